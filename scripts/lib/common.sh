# shellcheck shell=bash
# Shared code of scripts/migrate.sh, rehearse.sh, backup-cron.sh, test-migration.sh and maintenance.sh
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
#
# The environment's settings (hooks, health check, notification, run log) come from
# `pgward-report settings` (pgw_load_settings), the one reader of pgward.toml. A run sends
# ONE notification, about the whole run, when it ends (pgw_notify); the binaries it runs
# never notify (PGWARD_NOTIFY_URL is taken from their environment), so a step the script
# expects to fail never posts a false FAILED. With `log_dir`, the run's timestamped lines,
# its binaries' lines (when stderr is not a terminal) and its final JSON also go to
# <log_dir>/<script>-<env>-<UTC>.log (0600).

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
# runs (-q) print only what pgw_log_error prints. The run's log file gets every line.
pgw_log() {
  if [ -n "${PGW_QUIET:-}" ]; then
    pgw_log_lines "" "$@"
  else
    pgw_log_lines 1 "$@"
  fi
}

pgw_log_error() {
  pgw_log_lines 1 "$@"
}

pgw_log_always() {
  pgw_log_lines 1 "$@"
}

# pgw_log_lines TO_STDERR LINE...: the lines, timestamped, to the run's log (the log file,
# or the work folder until the file is open) and, when TO_STDERR is not empty, stderr.
pgw_log_lines() {
  local ts line prefix to_stderr=$1 file=${PGW_LOG_FILE:-}
  shift
  [ -z "$file" ] && [ -n "${PGW_WORK:-}" ] && [ -d "$PGW_WORK" ] && file=$PGW_WORK/early.log
  ts=$(pgw_timestamp)
  prefix="$ts ${PGW_SCRIPT:-pgward}${PGW_LOG_CONTEXT:+ $PGW_LOG_CONTEXT}:"
  while IFS= read -r line; do
    [ -n "$to_stderr" ] && printf '%s %s\n' "$prefix" "$line" >&2
    [ -n "$file" ] && printf '%s %s\n' "$prefix" "$line" >>"$file"
  done < <(printf '%s\n' "$@")
  return 0
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
  # The binaries never notify: the run sends one notification when it ends (pgw_notify);
  # a script another runs as a step (PGWARD_NESTED) leaves it to that one.
  PGW_NOTIFY_URL=${PGWARD_NOTIFY_URL:-}
  PGW_NESTED=${PGWARD_NESTED:-}
  unset PGWARD_NOTIFY_URL PGWARD_NESTED
  PGW_SETTINGS=
  PGW_LOG_FILE=
  PGW_HOOK_PID=
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
  # A running hook (pgw_hook_step): timeout passes the TERM on to the hook's group.
  if [ -n "${PGW_HOOK_PID:-}" ] && [ -s "$PGW_HOOK_PID" ]; then
    kill -TERM "$(cat "$PGW_HOOK_PID")" 2>/dev/null || true
  fi
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
    local document=$PGW_WORK/document.json
    pgw_document >"$document"
    # A notification that cannot be delivered is a warning; the exit code stays.
    pgw_notify "$document" && pgw_document >"$document"
    if [ "$PGW_EXIT" = 0 ] || [ "$PGW_EXIT" = 3 ]; then
      pgw_log "done (exit $PGW_EXIT)"
    else
      pgw_log_error "failed (exit $PGW_EXIT)"
    fi
    if [ -t 1 ]; then jq . "$document"; else cat "$document"; fi
    [ -z "$PGW_LOG_FILE" ] || cat "$document" >>"$PGW_LOG_FILE"
  fi
  rm -rf "$PGW_WORK"
  exit "$PGW_EXIT"
}

# The final document, compact, on stdout (pgw_on_exit prints it, pretty on a terminal).
pgw_document() {
  jq -nc \
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
# The environment's settings, the run log, the notification

# pgw_load_settings: reads the environment's settings of pgward.toml (`pgward-report
# settings` with the script's --env and --config) for pgw_setting, and opens the run's log
# file when the environment sets log_dir. Ends the script with the binary's error (a bad
# or unknown environment: exit 2) when it cannot.
pgw_load_settings() {
  local out=$PGW_WORK/settings.json rc=0
  PGWARD_NOTIFY_URL=$PGW_NOTIFY_URL "$(pgw_bin report)" settings "${PGW_GLOBAL[@]}" >"$out" || rc=$?
  if ! jq -e '.result | type == "object"' "$out" >/dev/null 2>&1; then
    [ "$rc" = 0 ] && rc=2
    pgw_finish "$rc" "$(jq -ce '.error | objects' "$out" 2>/dev/null ||
      pgw_error_json NO_JSON_OUTPUT "pgward-report settings printed no settings (exit $rc)" "see its messages above")"
  fi
  PGW_SETTINGS=$out
  pgw_open_log
}

# pgw_setting KEY: the environment's resolved KEY (nothing when it is null).
pgw_setting() {
  jq -r --arg k "$1" '.result[$k] | values' "$PGW_SETTINGS"
}

# Opens <log_dir>/<script>-<env>-<UTC>.log (0600, the folder 0700 when it is made), copies
# the lines logged so far into it, and removes this script's logs of this environment
# older than log_keep_days. A log that cannot be written is a warning, not a failure.
pgw_open_log() {
  local dir days env name file removed now
  dir=$(pgw_setting log_dir)
  [ -n "$dir" ] || return 0
  days=$(pgw_setting log_keep_days)
  env=$(pgw_setting env)
  name="${PGW_SCRIPT%.sh}-${env//[^A-Za-z0-9_.-]/_}"
  now=$(pgw_now_ms)
  file="$dir/$name-$(TZ=UTC printf '%(%Y%m%dT%H%M%S)T' $((now / 1000))).$(printf '%03d' $((now % 1000)))Z.log"
  if ! (umask 077 && mkdir -p "$dir" && set -C && : >"$file") 2>"$PGW_WORK/log.err"; then
    pgw_warn LOG_FILE_FAILED "cannot write the run log $file: $(cat "$PGW_WORK/log.err"); the run goes on without it (check log_dir in pgward.toml)"
    return 0
  fi
  [ -f "$PGW_WORK/early.log" ] && cat "$PGW_WORK/early.log" >>"$file"
  PGW_LOG_FILE=$file
  pgw_result log_file "$(jq -n --arg f "$file" '$f')"
  # The timestamp's shape too: env `dev` must not prune env `dev-eu`'s logs.
  local stamp='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9].[0-9][0-9][0-9]Z'
  removed=$(find "$dir" -maxdepth 1 -type f -name "$name-$stamp.log" ! -path "$file" -mmin +$((days * 1440)) -print -delete | wc -l)
  pgw_log "run log $file"
  [ "$removed" = 0 ] || pgw_log "removed $removed run log(s) of ${PGW_SCRIPT%.sh} $env older than $days days from $dir"
}

# pgw_notify DOCUMENT: sends the run's one notification (pgward-report notify: to the
# environment's notify_url, PGWARD_NOTIFY_URL first, when notify_on wants it). Returns 0
# when it added a warning (undelivered), so the caller rebuilds the document.
pgw_notify() {
  local document=$1 out=$PGW_WORK/notify.json args=() bin
  [ -z "$PGW_NESTED" ] || return 1
  if [ -n "$PGW_SETTINGS" ]; then
    [ "$(pgw_setting notify)" = true ] || return 1
    args=("${PGW_GLOBAL[@]}")
  else
    # No settings (a usage error, or pgward.toml is what failed): only PGWARD_NOTIFY_URL,
    # with the default notify_on, and no file read (an empty one).
    [ -n "$PGW_NOTIFY_URL" ] || return 1
    args=(--config /dev/null)
    [ -n "${PGW_QUIET:-}" ] && args+=(--quiet)
  fi
  bin=$(pgw_bin report)
  [ -x "$bin" ] || return 1
  PGWARD_NOTIFY_URL=$PGW_NOTIFY_URL PGWARD_ENV='' "$bin" notify "$document" "${args[@]}" >"$out" || true
  if jq -e '.result.sent == true' "$out" >/dev/null 2>&1; then
    pgw_log "notification sent to $(jq -r .result.to "$out")"
    return 1
  fi
  local why
  why=$(jq -r '(.warnings[]? | select(.code == "NOTIFY_FAILED") | .message) // empty' "$out" 2>/dev/null)
  if [ -n "$why" ]; then
    pgw_warn NOTIFY_FAILED "$why"
    return 0
  fi
  if ! jq -e '.ok' "$out" >/dev/null 2>&1; then
    pgw_warn NOTIFY_FAILED "the notification was not sent: $(jq -r '.error.message // "pgward-report notify printed no JSON"' "$out" 2>/dev/null)"
    return 0
  fi
  pgw_log "no notification: $(jq -r '.result.why' "$out")"
  return 1
}

# ---------------------------------------------------------------------------------------
# Binaries and steps

# pgw_bin TOOL: the path of pgward-TOOL: $PGWARD_BIN/pgward-TOOL, else found on PATH; a
# TOOL ending in .sh is a script beside this one's (scripts/TOOL).
pgw_bin() {
  if [[ $1 == *.sh ]]; then
    printf '%s\n' "$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")/$1"
  elif [ -n "${PGWARD_BIN:-}" ]; then
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
    arg=$(printf '%s' "$arg" | pgw_redact_stream)
    [[ $arg =~ ^[][A-Za-z0-9_./:=@%+,*-]+$ ]] || arg="'${arg//\'/\'\\\'\'}'"
    out+=("$arg")
  done
  printf '%s' "${out[*]}"
}

# stdin to stdout with the passwords of URLs and password=VALUE replaced by ***, line by
# line as they come (-u: a hook's output is logged as it prints it).
pgw_redact_stream() {
  sed -u -E -e 's#(://[^:/?@[:space:]]*):[^@/]*@#\1:***@#g' \
    -e "s#([Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd][[:space:]]*=[[:space:]]*)('[^']*'|[^[:space:]]+)#\\1***#g"
}

# pgw_step NAME TOOL ARG...: runs pgward-TOOL (or scripts/TOOL.sh) ARG... plus the script's global flags
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
  pgw_log "[$name] ${bin##*/} $(pgw_redact "$@" "${PGW_GLOBAL[@]}")"
  t0=$(pgw_now_ms)
  STEP_RC=0
  if [ -n "$PGW_LOG_FILE" ] && ! [ -t 2 ]; then
    # The binary's own lines into the run log too; only off a terminal, where nothing
    # asks (a protected environment's prompt needs stderr to be the terminal).
    local fd tee_pid
    exec {fd}> >(tee -a "$PGW_LOG_FILE" >&2)
    tee_pid=$!
    "$bin" "$@" "${PGW_GLOBAL[@]}" >"$STEP_JSON" 2>&"$fd" || STEP_RC=$?
    exec {fd}>&-
    wait "$tee_pid" || true
  else
    "$bin" "$@" "${PGW_GLOBAL[@]}" >"$STEP_JSON" || STEP_RC=$?
  fi
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

# pgw_hook_step NAME COMMAND TIMEOUT_S HINT: runs a hook of pgward.toml (pre_deploy,
# post_deploy) with `bash -c` in the current folder, no stdin, PGWARD_ENV and PGWARD_HOOK
# set, killed after TIMEOUT_S seconds; each line it prints is logged as it comes. Exit
# code 1 when it fails (HOOK_FAILED) or times out (HOOK_TIMEOUT); HINT says what then.
pgw_hook_step() {
  local name=$1 cmd=$2 timeout_s=$3 hint=$4 t0 ms raw=0 code=
  PGW_NSTEPS=$((PGW_NSTEPS + 1))
  STEP_NAME=$name
  STEP_JSON=$PGW_WORK/step-$PGW_NSTEPS.json
  STEP_OUT=$PGW_WORK/step-$PGW_NSTEPS.out
  : >"$STEP_OUT"
  pgw_log "[$name] $(pgw_redact "$cmd") (timeout ${timeout_s} s)"
  t0=$(pgw_now_ms)
  # timeout runs the hook in a process group of its own, so a timeout stops all of it;
  # Ctrl-C reaches the script alone, whose `wait` returns at once: pgw_on_interrupt then
  # stops the hook's group through timeout (PGW_HOOK_PID).
  {
    PGWARD_HOOK=$name PGWARD_ENV=$(pgw_setting env) timeout --kill-after=5 "$timeout_s" bash -c "$cmd" </dev/null 2>&1 &
    echo "$!" >"$STEP_OUT.pid"
    wait "$!" || echo "$?" >"$STEP_OUT.rc"
  } | pgw_redact_stream | while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line" >>"$STEP_OUT"
    pgw_log "[$name] | $line"
  done &
  PGW_HOOK_PID=$STEP_OUT.pid
  wait "$!" || true
  PGW_HOOK_PID=
  [ -f "$STEP_OUT.rc" ] && raw=$(cat "$STEP_OUT.rc")
  ms=$(($(pgw_now_ms) - t0))
  case $raw in
    0) STEP_RC=0 ;;
    124 | 137) STEP_RC=1 code=HOOK_TIMEOUT ;;
    *) STEP_RC=1 code=HOOK_FAILED ;;
  esac
  jq -nc --arg name "$name" --arg cmd "$(pgw_redact "$cmd")" --arg code "$code" --argjson rc "$STEP_RC" \
    --argjson raw "$raw" --argjson t "$timeout_s" --arg hint "$hint" --rawfile out "$STEP_OUT" '
    ($out | split("\n") | map(select(. != "")) | .[-5:] | join(" / ")) as $tail |
    {tool: "hook", command: $name, ok: ($rc == 0), exit_code: $rc,
     result: {command: $cmd, exit: $raw, timeout_s: $t}, warnings: [],
     error: (if $rc == 0 then null
       elif $code == "HOOK_TIMEOUT" then {code: $code, message: "\($name) did not finish within \($t) s and was stopped: \($cmd)", hint: $hint}
       else {code: $code, message: "\($name) failed (exit \($raw)): \($cmd)\(if $tail == "" then "" else "; its last output: " + $tail end)", hint: $hint} end)}' >"$STEP_JSON"
  pgw_record_step "$name" hook "$ms"
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

# migrate.sh's and rehearse.sh's checks after a deploy, judged against a baseline:
# the error rules of the last schema step, one `rule object` per line.
schema_errors() {
  pgw_jq '.result.findings[]? | select(.severity == "error") | "\(.rule) \(.object // .file // "")"' | sort -u
}

# The differences of the last drift step, one `change kind object` per line.
drift_differences() {
  pgw_jq '.result.differences[]? | "\(.change) \(.kind) \(.object)"' | sort -u
}

# Lines of $2 that are not in $1.
new_lines() {
  comm -13 <(printf '%s\n' "$1" | sed '/^$/d') <(printf '%s\n' "$2" | sed '/^$/d')
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
