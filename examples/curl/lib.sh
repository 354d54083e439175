# Sourced by the walkthroughs in this directory. Each step prints the curl command it
# runs and the answer. Settings:
#   KVT_URL    admin server (default http://127.0.0.1:6999, kvtier-server's default)
#   KVT_TOKEN  bearer token, when internal_api_server_auth_token is set
# A walkthrough exits 0 when every step answered as expected, 77 when the server lacks
# a tier it needs (skipped), 1 otherwise.
set -euo pipefail
KVT_URL=${KVT_URL:-http://127.0.0.1:6999}
_body=$(mktemp)
trap 'rm -f "$_body"' EXIT
auth=()
if [ -n "${KVT_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $KVT_TOKEN"); fi

# call STATUS METHOD PATH [JSON]: one request; fails unless it answers STATUS.
# The answer's body is left in $BODY.
call() {
  local want=$1 method=$2 path=$3 data=${4:-} code
  local args=(-sS -o "$_body" -w '%{http_code}' -X "$method" ${auth[@]+"${auth[@]}"})
  if [ -n "$data" ]; then args+=(-H 'Content-Type: application/json' -d "$data"); fi
  printf '\n$ curl -X %s %s%s%s\n' "$method" "'$KVT_URL$path'" "${data:+ -d '$data'}" \
    "${KVT_TOKEN:+ -H 'Authorization: Bearer ...'}"
  code=$(curl "${args[@]}" "$KVT_URL$path")
  BODY=$(cat "$_body")
  printf '%s %s\n' "$code" "$(printf '%s' "$BODY" | head -c 600)"
  if [ "$code" != "$want" ]; then
    echo "FAILED: expected HTTP $want" >&2
    exit 1
  fi
}

# field NAME: the first number or string value of "NAME" in $BODY (flat JSON is enough).
field() {
  printf '%s' "$BODY" | grep -o "\"$1\":\(\"[^\"]*\"\|[-0-9.a-z]*\)" | head -n1 | cut -d: -f2- | tr -d '"'
}

# expect NAME VALUE: $BODY's field NAME is VALUE.
expect() {
  local got
  got=$(field "$1")
  if [ "$got" != "$2" ]; then
    echo "FAILED: $1 is '$got', expected '$2'" >&2
    exit 1
  fi
}

# has_backend NAME: is NAME listed by GET /backends?
has_backend() {
  curl -sS ${auth[@]+"${auth[@]}"} "$KVT_URL/backends" | grep -q "\"$1\""
}

# need_backend NAME: skip the walkthrough (77) when the server has no NAME.
need_backend() {
  if ! has_backend "$1"; then
    echo "skipped: the server has no $1 (configure it, or build a kvtier that has it)"
    exit 77
  fi
}

# only_from NAME OTHER...: bypass every OTHER tier the server has, so that the next
# retrieve can only be served by NAME; unbypass_all undoes it.
only_from() {
  shift
  _bypassed=()
  for b in "$@"; do
    if has_backend "$b"; then
      call 200 PUT "/bypass/add?backend_name=$b"
      _bypassed+=("$b")
    fi
  done
}
unbypass_all() {
  for b in ${_bypassed[@]+"${_bypassed[@]}"}; do call 200 PUT "/bypass/remove?backend_name=$b"; done
}

# drained NAME: wait (5 s at most) until NAME has no write-through queued.
drained() {
  for _ in $(seq 50); do
    if curl -sS ${auth[@]+"${auth[@]}"} "$KVT_URL/backends/$1" | grep -q '"queued":0[,}]'; then
      return 0
    fi
    sleep 0.1
  done
  echo "FAILED: $1 still has writes queued" >&2
  exit 1
}
