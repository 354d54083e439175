# The README's embedding snippet, compiled and run: `cmake -P` script behind the
# readme_snippet test. Takes the one ```c block of README.md as it is now, compiles it
# as a translation unit of its own (-std=c11 -Wall -Wextra -Werror), links it with
# tests/readme_snippet_main.c against the shared libkvtier (public symbols only) and runs
# the harness, which drives the snippet through a real store, failing paths included.
#
# -D inputs: README, CC, INCLUDE (include/), LIB (libkvtier.so), HARNESS (.c), WORK (a
# scratch directory), SANITIZE (KVT_SANITIZE, may be empty).
cmake_minimum_required(VERSION 3.18)
foreach(v README CC INCLUDE LIB HARNESS WORK)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "readme_snippet.cmake: -D${v}=... is required")
  endif()
endforeach()

file(READ "${README}" text)
set(open "\n```c\n")
set(blocks 0)
set(rest "${text}")
while(TRUE)
  string(FIND "${rest}" "${open}" at)
  if(at EQUAL -1)
    break()
  endif()
  math(EXPR from "${at} + 6")
  string(SUBSTRING "${rest}" ${from} -1 rest)
  string(FIND "${rest}" "\n```" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "${README}: the ```c block is never closed")
  endif()
  math(EXPR blocks "${blocks} + 1")
  string(SUBSTRING "${rest}" 0 ${end} snippet)
  string(SUBSTRING "${rest}" ${end} -1 rest)
endwhile()
if(NOT blocks EQUAL 1)
  message(FATAL_ERROR "${README} has ${blocks} ```c blocks; this test compiles exactly one, "
                      "the embedding snippet (mark other C examples ```text or move them)")
endif()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/snippet.c" "${snippet}\n")

set(flags -std=c11 -O2 -g -Wall -Wextra -Werror "-I${INCLUDE}")
if(SANITIZE)
  list(APPEND flags "-fsanitize=${SANITIZE}" -fno-omit-frame-pointer -fno-sanitize-recover=all)
endif()
get_filename_component(libdir "${LIB}" DIRECTORY)

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
endfunction()

step("compiling README.md's C block (saved as ${WORK}/snippet.c)"
     "${CC}" ${flags} -c "${WORK}/snippet.c" -o "${WORK}/snippet.o")
step("compiling the harness" "${CC}" ${flags} -D_GNU_SOURCE -c "${HARNESS}" -o "${WORK}/main.o")
step("linking the snippet against ${LIB}"
     "${CC}" ${flags} "${WORK}/snippet.o" "${WORK}/main.o" "${LIB}" "-Wl,-rpath,${libdir}"
     -o "${WORK}/readme_snippet")

execute_process(COMMAND "${WORK}/readme_snippet" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the README snippet failed its scenarios (${rc}); see above")
endif()
