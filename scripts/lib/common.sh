# shellcheck shell=bash
# Shared code of scripts/migrate.sh, backup-cron.sh, test-migration.sh and maintenance.sh
# (sourced, not run; needs bash 4.4+ and jq).
#
# A script is a list of steps. Each step runs one pgward binary (found in $PGWARD_BIN,
# else on PATH) or one PostgreSQL client command; its JSON document is kept in a file, its
# exit code in STEP_RC, and one timestamped summary line goes to stderr. stdin and stderr
# pass through to the binaries, so a protected environment's prompt reaches the terminal
# and the binaries' own log lines reach the person.
#
# The script's stdout is one JSON document printed when it ends, however it ends, shaped
# like the binaries' envelope so `jq` and `pgward-report render` read it the same way:
#   {"tool":"migrate.sh","command":"deploy","version":"0.1.0","ok":false,"exit_code":1,
#    "started_at":"...","duration_ms":5123,"target":{...},
#    "result":{"env":"staging","steps":[{"step":"deploy","tool":"migrate","command":"deploy",
#              "exit_code":1,"ok":false,"duration_ms":40,"result":{...},"warnings":[],
#              "error":{...}}, ...], ...what the script adds},
#    "warnings":[{"code":"...","message":"...","step":"lint"}],
#    "error":{"code":"MIGRATION_FAILED","message":"...","hint":"...","details":{"step":"deploy",...}}}
# ok is true for exit codes 0 and 3, as for the binaries; error is the failing step's
# error (with details.step naming the step) or the script's own.

# What to do when a pgward binary is missing.
PGW_TOOLS_HINT="build pgward (cargo build --release) and set PGWARD_BIN to the folder holding the pgward-* binaries, or put them on PATH"

# ---------------------------------------------------------------------------------------
# Time and logging

# Milliseconds since the epoch.
pgw_now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local us=${EPOCHREALTIME/[.,]/}
    echo $((us / 1000))
  else
    echo $(($(date +%s) * 1000))
  fi
}

# Now as UTC RFC 3339 with milliseconds, the binaries' log format.
pgw_timestamp() {
  local ms secs
  ms=$(pgw_now_ms)
  secs=$((ms / 1000))
  TZ=UTC printf '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' "$secs" $((ms % 1000))
}

# pgw_log LINE...: timestamped lines on stderr (one per line of the arguments); quiet
# runs (-q) print only what pgw_log_error prints.
pgw_log() {
  [ -n "${PGW_QUIET:-}" ] && return 0
  pgw_log_always "$@"
}

pgw_log_error() {
  pgw_log_always "$@"
}

pgw_log_always() {
  local ts line prefix
  ts=$(pgw_timestamp)
  prefix="$ts ${PGW_SCRIPT:-pgward}${PGW_LOG_CONTEXT:+ $PGW_LOG_CONTEXT}:"
  while IFS= read -r line; do
    printf '%s %s\n' "$prefix" "$line" >&2
  done < <(printf '%s\n' "$@")
}

# ---------------------------------------------------------------------------------------
# The run: start, result fields, warnings, the final document

# pgw_start SCRIPT COMMAND: checks for jq, makes the work folder, installs the traps that
# print the final document and run the cleanup hooks however the script ends.
pgw_start() {
  PGW_SCRIPT=$1
  PGW_COMMAND=$2
  if ! command -v jq >/dev/null 2>&1; then
    printf '%s\n' "$PGW_SCRIPT: jq is missing (apt-get install jq)" >&2
    printf '{"tool":"%s","command":"%s","ok":false,"exit_code":2,"result":null,"warnings":[],"error":{"code":"TOOL_MISSING","message":"jq is missing","hint":"install jq (apt-get install jq)"}}\n' \
      "$PGW_SCRIPT" "$PGW_COMMAND"
    exit 2
  fi
  PGW_STARTED_MS=$(pgw_now_ms)
  PGW_STARTED_AT=$(TZ=UTC printf '%(%Y-%m-%dT%H:%M:%S)TZ' $((PGW_STARTED_MS / 1000)))
  PGW_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgward-script.XXXXXX")
  : >"$PGW_WORK/steps.jsonl"
  : >"$PGW_WORK/warnings.jsonl"
  echo '{}' >"$PGW_WORK/result.json"
  PGW_NSTEPS=0
  PGW_EXIT=
  PGW_ERROR=null
  PGW_NO_DOCUMENT=
  PGW_CLEANUP=()
  PGW_GLOBAL=()
  STEP_RC=0
  STEP_JSON=/dev/null
  STEP_NAME=
  trap pgw_on_exit EXIT
  trap pgw_on_interrupt INT TERM
  set -o errtrace
  trap 'PGW_ERR_LINE=$LINENO; PGW_ERR_COMMAND=$BASH_COMMAND' ERR
}

# pgw_on_cleanup FUNCTION: run FUNCTION when the script ends, before the final document is
# printed (so it may still add warnings), also after a failure or Ctrl-C.
pgw_on_cleanup() {
  PGW_CLEANUP+=("$1")
}

# pgw_result KEY JSON: sets result.KEY of the final document.
pgw_result() {
  local tmp=$PGW_WORK/result.tmp
  jq -c --arg k "$1" --argjson v "$2" '.[$k] = $v' "$PGW_WORK/result.json" >"$tmp"
  mv "$tmp" "$PGW_WORK/result.json"
}

# pgw_warn CODE MESSAGE: a warning of the script itself, logged and kept in the document.
pgw_warn() {
  jq -nc --arg c "$1" --arg m "$2" '{code: $c, message: $m}' >>"$PGW_WORK/warnings.jsonl"
  pgw_log_error "warning $1: $2"
}

# pgw_error_json CODE MESSAGE HINT [DETAILS_JSON]: an error object.
pgw_error_json() {
  jq -nc --arg c "$1" --arg m "$2" --arg h "$3" --argjson d "${4:-null}" \
    '{code: $c, message: $m, hint: $h} + (if $d == null then {} else {details: $d} end)'
}

# pgw_finish CODE [ERROR_JSON]: ends the script with CODE; the EXIT trap prints the document.
pgw_finish() {
  PGW_EXIT=$1
  PGW_ERROR=${2:-null}
  exit "$1"
}

# pgw_fail CODE ERROR_CODE MESSAGE HINT [DETAILS_JSON]: ends the script with its own error.
pgw_fail() {
  pgw_log_error "error $2: $3" "hint: $4"
  pgw_finish "$1" "$(pgw_error_json "$2" "$3" "$4" "${5:-}")"
}

# pgw_fail_step: ends the script with the last step's exit code and error.
pgw_fail_step() {
  pgw_finish "$STEP_RC" "$(pgw_step_error)"
}

# The last step's error with details.step naming the step (a made-up one if it had none).
pgw_step_error() {
  jq -c --arg step "$STEP_NAME" --argjson rc "$STEP_RC" '
    (.error // {code: "STEP_FAILED", message: "step \($step) exited with \($rc)", hint: "see the log lines above"})
    | .details = ((.details // {}) + {step: $step})' "$STEP_JSON"
}

# pgw_usage_error MESSAGE: usage on stderr, exit 2 with a USAGE error.
pgw_usage_error() {
  pgw_usage >&2
  pgw_fail 2 USAGE "$1" "see the usage above, or run $PGW_SCRIPT --help"
}

# The comment block at the top of the running script, without the shebang and the `# `.
pgw_usage() {
  sed -n '2,/^[^#]/{/^#/!d;s/^# \{0,1\}//;p}' "$0"
}

# --help: usage on stdout, exit 0, no JSON document.
pgw_help() {
  PGW_NO_DOCUMENT=1
  pgw_usage
  PGW_EXIT=0
  exit 0
}

# On SIGINT/SIGTERM (after the running binary has cancelled its query and exited 130).
# A script sets PGW_INTERRUPT_HINT to say how to undo what it had done by then.
pgw_on_interrupt() {
  local hint=${PGW_INTERRUPT_HINT:-"the running binary cancelled its server query; result.steps shows what was done"}
  pgw_log_error "interrupted during step ${STEP_NAME:-none}" "hint: $hint"
  pgw_finish 130 "$(pgw_error_json INTERRUPTED "interrupted (SIGINT/SIGTERM) during step ${STEP_NAME:-none}" "$hint")"
}

pgw_on_exit() {
  local rc=$? hook
  set +e
  trap - EXIT INT TERM ERR
  if [ -z "$PGW_EXIT" ]; then
    PGW_EXIT=$rc
    if [ "$rc" != 0 ]; then
      PGW_ERROR=$(pgw_error_json SCRIPT_FAILED \
        "$PGW_SCRIPT stopped at line ${PGW_ERR_LINE:-?} running: ${PGW_ERR_COMMAND:-?}" \
        "a bug in the script or a missing tool; see the messages above")
      pgw_log_error "stopped at line ${PGW_ERR_LINE:-?} running: ${PGW_ERR_COMMAND:-?} (exit $rc)"
    fi
  fi
  for hook in "${PGW_CLEANUP[@]}"; do
    "$hook"
  done
  if [ -z "$PGW_NO_DOCUMENT" ]; then
    pgw_print_document
    if [ "$PGW_EXIT" = 0 ] || [ "$PGW_EXIT" = 3 ]; then
      pgw_log "done (exit $PGW_EXIT)"
    else
      pgw_log_error "failed (exit $PGW_EXIT)"
    fi
  fi
  rm -rf "$PGW_WORK"
  exit "$PGW_EXIT"
}

pgw_print_document() {
  local pretty=-c
  [ -t 1 ] && pretty=
  jq -n $pretty \
    --arg tool "$PGW_SCRIPT" --arg command "$PGW_COMMAND" --argjson code "$PGW_EXIT" \
    --arg started "$PGW_STARTED_AT" --argjson ms $(($(pgw_now_ms) - PGW_STARTED_MS)) \
    --slurpfile steps "$PGW_WORK/steps.jsonl" --slurpfile warnings "$PGW_WORK/warnings.jsonl" \
    --slurpfile result "$PGW_WORK/result.json" --argjson error "$PGW_ERROR" '
    {tool: $tool, command: $command,
     version: ([$steps[] | .version | strings] | last),
     ok: ($code == 0 or $code == 3), exit_code: $code,
     started_at: $started, duration_ms: $ms,
     target: ([$steps[] | .target | objects] | last),
     result: ($result[0] + {steps: [$steps[] | del(.version, .target)]}),
     warnings: ([$steps[] | .step as $s | .warnings[]? | . + {step: $s}] + $warnings),
     error: (if $code == 0 or $code == 3 then null else $error end)}'
}

# ---------------------------------------------------------------------------------------
# Binaries and steps

# pgw_bin TOOL: the path of pgward-TOOL: $PGWARD_BIN/pgward-TOOL, else found on PATH.
pgw_bin() {
  if [ -n "${PGWARD_BIN:-}" ]; then
    printf '%s\n' "$PGWARD_BIN/pgward-$1"
  else
    command -v "pgward-$1" || printf '%s\n' "pgward-$1"
  fi
}

# pgw_need_tools TOOL...: exit 2 (TOOL_MISSING) unless every pgward-TOOL is there.
pgw_need_tools() {
  local tool missing=()
  for tool in "$@"; do
    [ -x "$(pgw_bin "$tool")" ] || missing+=("pgward-$tool")
  done
  [ ${#missing[@]} = 0 ] ||
    pgw_fail 2 TOOL_MISSING "not found: ${missing[*]} (PGWARD_BIN=${PGWARD_BIN:-unset})" "$PGW_TOOLS_HINT"
}

# pgw_need_pg_tools NAME...: exit 2 (TOOL_MISSING) unless each PostgreSQL client tool
# (psql, pg_dump) is there ($PGWARD_PG_BINDIR, else PATH).
pgw_need_pg_tools() {
  local c missing=()
  for c in "$@"; do
    command -v "$(pgw_pg_tool "$c")" >/dev/null 2>&1 || missing+=("$c")
  done
  [ ${#missing[@]} = 0 ] ||
    pgw_fail 2 TOOL_MISSING "not found: ${missing[*]}" \
      "install the PostgreSQL client (apt-get install postgresql-client) or set PGWARD_PG_BINDIR"
}

# Arguments as they may be logged: passwords in URLs and password=VALUE (libpq key=value
# strings, PGPASSWORD=...) become ***, whatever their length.
pgw_redact() {
  local arg out=()
  for arg in "$@"; do
    arg=$(printf '%s' "$arg" | sed -E -e 's#(://[^:/?@[:space:]]*):[^@/]*@#\1:***@#g' \
      -e "s#([Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd][[:space:]]*=[[:space:]]*)('[^']*'|[^[:space:]]+)#\\1***#g")
    [[ $arg =~ ^[][A-Za-z0-9_./:=@%+,*-]+$ ]] || arg="'${arg//\'/\'\\\'\'}'"
    out+=("$arg")
  done
  printf '%s' "${out[*]}"
}

# pgw_step NAME TOOL ARG...: runs pgward-TOOL ARG... plus the script's global flags
# (PGW_GLOBAL: --env, --config, --quiet), keeps its JSON document in $STEP_JSON and its
# exit code in $STEP_RC, records the step for the final document and logs its outcome.
# Never fails itself: the caller decides what the exit code means.
pgw_step() {
  local name=$1 tool=$2 bin t0 ms
  shift 2
  PGW_NSTEPS=$((PGW_NSTEPS + 1))
  STEP_NAME=$name
  STEP_JSON=$PGW_WORK/step-$PGW_NSTEPS.json
  bin=$(pgw_bin "$tool")
  pgw_log "[$name] pgward-$tool $(pgw_redact "$@" "${PGW_GLOBAL[@]}")"
  t0=$(pgw_now_ms)
  STEP_RC=0
  "$bin" "$@" "${PGW_GLOBAL[@]}" >"$STEP_JSON" || STEP_RC=$?
  ms=$(($(pgw_now_ms) - t0))
  if ! jq -e 'type == "object"' "$STEP_JSON" >/dev/null 2>&1; then
    # No document: keep what was printed in the message, and never take it for success.
    [ "$STEP_RC" = 0 ] && STEP_RC=1
    jq -nc --arg tool "$tool" --argjson rc "$STEP_RC" --rawfile out "$STEP_JSON" '
      {tool: $tool, command: null, ok: false, exit_code: $rc, result: null, warnings: [],
       error: {code: "NO_JSON_OUTPUT",
               message: "pgward-\($tool) printed no JSON document (exit \($rc))\(if $out == "" then "" else ": " + ($out | .[0:500]) end)",
               hint: "see its messages above"}}' >"$STEP_JSON.tmp"
    mv "$STEP_JSON.tmp" "$STEP_JSON"
  fi
  pgw_record_step "$name" "$tool" "$ms"
}

# pgw_command_step NAME TOOL ERROR_CODE COMMAND...: a step that is not a pgward binary
# (psql, pg_dump): its stdout is kept in $STEP_OUT, its stderr in the error message. Exit
# codes: psql/pg_dump's 2 (connection lost or refused) becomes 4, any other failure 1.
pgw_command_step() {
  local name=$1 tool=$2 code=$3 t0 ms rc=0
  shift 3
  PGW_NSTEPS=$((PGW_NSTEPS + 1))
  STEP_NAME=$name
  STEP_JSON=$PGW_WORK/step-$PGW_NSTEPS.json
  STEP_OUT=$PGW_WORK/step-$PGW_NSTEPS.out
  pgw_log "[$name] $tool"
  t0=$(pgw_now_ms)
  "$@" >"$STEP_OUT" 2>"$STEP_OUT.err" || rc=$?
  ms=$(($(pgw_now_ms) - t0))
  case $rc in
    0) STEP_RC=0 ;;
    2) STEP_RC=4 code=CONNECTION_FAILED ;;
    130) STEP_RC=130 code=INTERRUPTED ;;
    *) STEP_RC=1 ;;
  esac
  jq -nc --arg tool "$tool" --arg code "$code" --argjson rc "$STEP_RC" --argjson raw "$rc" \
    --rawfile err "$STEP_OUT.err" '
    {tool: $tool, command: null, ok: ($rc == 0), exit_code: $rc, result: null, warnings: [],
     error: (if $rc == 0 then null else
       {code: $code, message: "\($tool) failed (exit \($raw)): \($err | rtrimstr("\n") | .[0:2000])",
        hint: "see the message of \($tool)"} end)}' >"$STEP_JSON"
  pgw_record_step "$name" "$tool" "$ms"
}

# Appends the step to the final document and logs its outcome, error and warnings; at error
# level when it failed, unless the caller ran the step with PGW_EXPECT="CODES" listing
# exit codes it handles (preflight's 1 for a missing backup, rollback's 1 for NO_DOWN_SQL).
pgw_record_step() {
  local name=$1 tool=$2 ms=$3 summary
  jq -c --arg step "$name" --arg tool "$tool" --argjson rc "$STEP_RC" --argjson ms "$ms" '
    {step: $step, tool: (.tool // $tool), command: .command, exit_code: $rc,
     ok: ($rc == 0 or $rc == 3), duration_ms: $ms, version: .version, target: .target,
     result: .result, warnings: (.warnings // []), error: .error}' "$STEP_JSON" >>"$PGW_WORK/steps.jsonl"
  local expected=false
  [[ " ${PGW_EXPECT:-} " == *" $STEP_RC "* ]] && expected=true
  summary=$(jq -r --arg step "$name" --argjson rc "$STEP_RC" --argjson ms "$ms" --argjson expected "$expected" '
    "[\($step)] " + (if $rc == 0 then "ok" elif $rc == 3 then "needs attention (exit 3)" elif $expected then "exit \($rc)" else "failed (exit \($rc))" end)
    + " in \($ms) ms"
    + (if .error and $rc != 0 and $rc != 3 then ": \(.error.code): \(.error.message)"
         + (if (.error.hint // "") != "" then "\nhint: \(.error.hint)" else "" end) else "" end)
    + ([.warnings[]? | "\nwarning \(.code): \(.message)"] | join(""))' "$STEP_JSON")
  if [ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || [[ " ${PGW_EXPECT:-} " == *" $STEP_RC "* ]]; then
    pgw_log "$summary"
  else
    pgw_log_error "$summary"
  fi
}

# pgw_jq FILTER [ARGS...]: jq -r FILTER on the last step's document.
pgw_jq() {
  local filter=$1
  shift
  jq -r "$@" "$filter" "$STEP_JSON"
}

# pgw_detail FILTER [JQ_ARGS...]: logs jq -r FILTER of the last step's document, when it
# prints anything.
pgw_detail() {
  local filter=$1 text
  shift
  text=$(jq -r "$@" "$filter" "$STEP_JSON" 2>/dev/null) || return 0
  [ -n "$text" ] && pgw_log "$text"
  return 0
}

# ---------------------------------------------------------------------------------------
# Database URLs for the PostgreSQL client tools (psql, pg_dump)

# pgw_pg_tool NAME: NAME from $PGWARD_PG_BINDIR when set (as pgward-backup does), else PATH.
pgw_pg_tool() {
  if [ -n "${PGWARD_PG_BINDIR:-}" ]; then
    printf '%s\n' "$PGWARD_PG_BINDIR/$1"
  else
    printf '%s\n' "$1"
  fi
}

# The parts of a postgresql:// URL: PGW_URL_SCHEME, PGW_URL_USER (still percent-encoded),
# PGW_URL_PASSWORD (decoded), PGW_URL_HOSTPORT, PGW_URL_DB, PGW_URL_QUERY. Returns 1 for
# something that is not such a URL.
pgw_url_parse() {
  local re='^(postgres|postgresql)://(([^@/?#]*)@)?([^/?#]*)(/([^?#]*))?(\?([^#]*))?$'
  [[ $1 =~ $re ]] || return 1
  PGW_URL_SCHEME=${BASH_REMATCH[1]}
  local userinfo=${BASH_REMATCH[3]}
  PGW_URL_HOSTPORT=${BASH_REMATCH[4]}
  PGW_URL_DB=${BASH_REMATCH[6]}
  PGW_URL_QUERY=${BASH_REMATCH[8]}
  PGW_URL_USER=${userinfo%%:*}
  PGW_URL_PASSWORD=
  PGW_URL_HAS_PASSWORD=
  if [[ $userinfo == *:* ]]; then
    PGW_URL_HAS_PASSWORD=1
    local pw=${userinfo#*:}
    pw=${pw//\\/\\\\}
    printf -v PGW_URL_PASSWORD '%b' "${pw//%/\\x}"
  fi
}

# pgw_url_with_db URL DB: URL naming database DB instead (everything else kept).
pgw_url_with_db() {
  pgw_url_parse "$1" || return 1
  local auth=
  [ -n "${BASH_REMATCH[2]}" ] && auth=${BASH_REMATCH[2]}
  printf '%s://%s%s/%s%s\n' "$PGW_URL_SCHEME" "$auth" "$PGW_URL_HOSTPORT" "$2" "${PGW_URL_QUERY:+?$PGW_URL_QUERY}"
}

# Query parameters libpq knows; Prisma's own (schema, connection_limit, pgbouncer, ...)
# would make psql refuse the URL.
PGW_LIBPQ_PARAMS=" host hostaddr port sslmode sslrootcert sslcert sslkey sslpassword sslcrl connect_timeout application_name options target_session_attrs gssencmode channel_binding "

# pgw_pg TOOL URL ARG...: runs psql/pg_dump on URL without putting its password on the
# command line (it goes in PGPASSWORD) and without Prisma's query parameters.
pgw_pg() {
  local tool=$1 url=$2 kept=() param query
  shift 2
  pgw_url_parse "$url" || { printf '%s\n' "not a postgresql:// URL (not shown: it may hold a password)" >&2; return 2; }
  if [ -n "$PGW_URL_QUERY" ]; then
    IFS='&' read -r -a query <<<"$PGW_URL_QUERY"
    for param in "${query[@]}"; do
      [[ $PGW_LIBPQ_PARAMS == *" ${param%%=*} "* ]] && kept+=("$param")
    done
  fi
  local q
  q=$(IFS='&'; printf '%s' "${kept[*]}")
  local plain="postgresql://${PGW_URL_USER:+$PGW_URL_USER@}$PGW_URL_HOSTPORT/$PGW_URL_DB${q:+?$q}"
  if [ -n "$PGW_URL_HAS_PASSWORD" ]; then
    PGPASSWORD=$PGW_URL_PASSWORD "$(pgw_pg_tool "$tool")" "$@" -d "$plain"
  else
    "$(pgw_pg_tool "$tool")" "$@" -d "$plain"
  fi
}

# pgw_config_env_value ENV KEY [CONFIG]: the value of KEY in [env.ENV] of pgward.toml
# (CONFIG, else ./pgward.toml), unquoted, or nothing. A plain `key = value` line only;
# the binaries read the file in full (and refuse unknown keys or wrong types) before any
# script step that relies on the value, so a form this reader misses reads as unset.
pgw_config_env_value() {
  local config=${3:-pgward.toml}
  [ -f "$config" ] || return 0
  awk -v want="env.$1" -v key="$2" '
    /^[[:space:]]*\[/ { s = $0; sub(/#.*$/, "", s); gsub(/[][[:space:]"'\'']/, "", s); section = s; next }
    section == want {
      line = $0; sub(/^[[:space:]]*/, "", line)
      if (index(line, key) != 1) next
      rest = substr(line, length(key) + 1)
      if (rest !~ /^[[:space:]]*=/) next
      v = rest; sub(/^[[:space:]]*=[[:space:]]*/, "", v); sub(/[[:space:]]*(#.*)?$/, "", v)
      gsub(/^["'\'']|["'\'']$/, "", v); print v; exit
    }' "$config"
}

# pgw_config_url_var ENV [CONFIG]: sets PGW_URL_VAR to the `database_url_env` of
# [env.ENV] (or nothing), after checking that it is a variable name (letters, digits,
# _): `${!var}` with a crafted value such as `x[$(cmd)]` would run cmd. Ends the script
# (exit 2, CONFIG_INVALID) otherwise.
pgw_config_url_var() {
  PGW_URL_VAR=$(pgw_config_env_value "$1" database_url_env "${2:-}")
  if [ -n "$PGW_URL_VAR" ] && ! [[ $PGW_URL_VAR =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    pgw_fail 2 CONFIG_INVALID "[env.$1] database_url_env in ${2:-pgward.toml} is not the name of an environment variable: $(pgw_redact "$PGW_URL_VAR")" \
      "set it to the name of the variable that holds the URL (letters, digits and _), e.g. database_url_env = \"PRODUCTION_DATABASE_URL\""
  fi
}
