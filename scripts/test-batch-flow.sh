#!/usr/bin/env bash
# The seed flow: one 2-video batch through its whole life, against a running videobatch.
#
#   1)   create a batch of 2 videos                         (POST /api/enterprise/video-batch)
#   1.5) POST it again with the same request id: an idempotent replay, the same batch_id
#   2)   drive the worker (run-once) and poll until the batch ends
#   3)   check the final counts and every completed task's video_url
#   4)   check the credits: the charge, and one refund per failed or cancelled task
#   5)   replay the original POST once more: idempotent_replay with the FINAL status
#
# Environment: BASE_URL (default http://127.0.0.1:8000), ENTERPRISE_API_KEY, INTERNAL_WORKER_SECRET;
# optional REQUEST_ID (default test-<epoch seconds>) and POLL_TIMEOUT_S (default 120).
# Needs curl; jq is recommended (without it the idempotency test is skipped and python3 reads
# the JSON of the other steps). Exits non-zero on the first failed check.
set -uo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"
REQ_ID="${REQUEST_ID:-test-$(date +%s)}"
POLL_TIMEOUT_S="${POLL_TIMEOUT_S:-120}"
BODY='{"items":[{"prompt":"A cinematic video of a city at sunset"},{"prompt":"An anime style video of a cat playing"}]}'

fail() {
  echo "❌ $1"
  shift
  for line in "$@"; do echo "   $line"; done
  exit 1
}

command -v curl >/dev/null 2>&1 || fail "curl is required"
[ -n "${ENTERPRISE_API_KEY:-}" ] || fail "ENTERPRISE_API_KEY is not set"
[ -n "${INTERNAL_WORKER_SECRET:-}" ] || fail "INTERNAL_WORKER_SECRET is not set (the worker is driven through the internal API)"

HAVE_JQ=0
command -v jq >/dev/null 2>&1 && HAVE_JQ=1
if [ "$HAVE_JQ" = 0 ] && ! command -v python3 >/dev/null 2>&1; then
  fail "jq or python3 is needed to read the answers"
fi

# get JSON PATH: print the value at a jq-style path (.a.b, .a[0].b) of the JSON on stdin.
get() {
  if [ "$HAVE_JQ" = 1 ]; then
    jq -r "$1"
  else
    python3 -c '
import json, re, sys
value = json.load(sys.stdin)
for key, index in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", sys.argv[1]):
    try:
        value = value[key] if key else value[int(index)]
    except (KeyError, IndexError, TypeError):
        value = None
        break
print("null" if value is None else json.dumps(value).lower() if isinstance(value, bool) else value)
' "$1"
  fi
}

pretty() {
  if [ "$HAVE_JQ" = 1 ]; then jq .; else python3 -m json.tool; fi
}

# http METHOD PATH [BODY] [HEADER...]: sets STATUS and RESPONSE.
http() {
  local method="$1" path="$2" body="${3:-}"
  shift 3 2>/dev/null || shift $#
  local args=(-sS -X "$method" "$BASE_URL$path" -H "Content-Type: application/json" -w $'\n%{http_code}')
  for header in "$@"; do args+=(-H "$header"); done
  [ -n "$body" ] && args+=(--data "$body")
  local out
  out=$(curl "${args[@]}" 2>&1) || fail "Cannot reach $BASE_URL$path" "$out"
  STATUS="${out##*$'\n'}"
  RESPONSE="${out%$'\n'*}"
}

create() {
  http POST /api/enterprise/video-batch "$BODY" \
    "x-api-key: $ENTERPRISE_API_KEY" "x-request-id: $REQ_ID"
}

echo "videobatch seed flow against $BASE_URL"
echo

# -- 1) create -----------------------------------------------------------------------------------
echo "1) 🎬 Create a batch of 2 videos (request_id: $REQ_ID) ..."
create
echo "$RESPONSE" | pretty
[ "$STATUS" = 201 ] || [ "$STATUS" = 200 ] || fail "Create failed: HTTP $STATUS" "$RESPONSE"
[ "$(echo "$RESPONSE" | get .ok)" = true ] || fail "Create failed: ok is not true"
BATCH_ID=$(echo "$RESPONSE" | get .batch_id)
TOTAL=$(echo "$RESPONSE" | get .total_count)
COST=$(echo "$RESPONSE" | get .cost_per_video)
REQUIRED=$(echo "$RESPONSE" | get .required_credits)
[ "$TOTAL" = 2 ] || fail "Create failed: total_count is $TOTAL, expected 2"
[ "$REQUIRED" = $((TOTAL * COST)) ] || fail "Create failed: required_credits $REQUIRED != $TOTAL x $COST"
echo "✅ Batch created: $BATCH_ID (required_credits: $REQUIRED)"
echo

# -- 1.5) idempotency ----------------------------------------------------------------------------
echo "1.5) 🔄 Test idempotency (same request_id, POST twice) ..."
if [ "$HAVE_JQ" = 1 ]; then
  echo "   First call batch_id: $BATCH_ID"
  echo "   Making second call with same request_id: $REQ_ID"
  create
  echo "$RESPONSE" | jq .
  if [ "$(echo "$RESPONSE" | jq -r .ok)" != true ]; then
    fail "Idempotency test failed: second call did not succeed (HTTP $STATUS)" \
      "$(echo "$RESPONSE" | jq -r '.detail // .code // .')"
  fi
  if [ "$(echo "$RESPONSE" | jq -r .idempotent_replay)" != true ]; then
    fail "Idempotency test failed: idempotent_replay is not true" \
      "idempotent_replay: $(echo "$RESPONSE" | jq -r .idempotent_replay)"
  fi
  SECOND_ID=$(echo "$RESPONSE" | jq -r .batch_id)
  if [ "$SECOND_ID" != "$BATCH_ID" ]; then
    echo "❌ Idempotency test failed: batch_id mismatch"
    echo "   First call:  $BATCH_ID"
    echo "   Second call: $SECOND_ID"
    exit 1
  fi
  echo "✅ Idempotency test passed:"
  echo "   idempotent_replay: true"
  echo "   batch_id matches: $BATCH_ID"
else
  echo "⚠️  jq is not installed: skipping the idempotency test (the other steps are not affected)"
fi
echo

# -- 2) drive the worker until the batch ends ----------------------------------------------------
echo "2) ⚙️  Drive the worker (POST /api/internal/worker/run-once) until the batch ends ..."
deadline=$((SECONDS + POLL_TIMEOUT_S))
while :; do
  http POST /api/internal/worker/run-once '{"max_tasks": 10}' \
    "x-internal-secret: $INTERNAL_WORKER_SECRET"
  [ "$STATUS" = 200 ] || fail "run-once failed: HTTP $STATUS" "$RESPONSE"
  claimed=$(echo "$RESPONSE" | get .claimed)
  if [ "$claimed" != 0 ]; then
    echo "   run-once: claimed $claimed, completed $(echo "$RESPONSE" | get .completed)," \
      "requeued $(echo "$RESPONSE" | get .requeued), failed $(echo "$RESPONSE" | get .failed)," \
      "cancelled $(echo "$RESPONSE" | get .cancelled)"
  fi
  http GET "/api/enterprise/video-batch/$BATCH_ID" "" "x-api-key: $ENTERPRISE_API_KEY"
  [ "$STATUS" = 200 ] || fail "Reading the batch failed: HTTP $STATUS" "$RESPONSE"
  BATCH_STATUS=$(echo "$RESPONSE" | get .status)
  case "$BATCH_STATUS" in
    completed | failed | partially_completed | cancelled) break ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || fail "The batch did not end within ${POLL_TIMEOUT_S}s (status: $BATCH_STATUS)"
  sleep 1
done
echo "✅ Batch ended: $BATCH_STATUS"
echo

# -- 3) final counts and video URLs --------------------------------------------------------------
echo "3) 🔍 Check the final counts and video URLs ..."
DETAIL="$RESPONSE"
COMPLETED=$(echo "$DETAIL" | get .counts.completed)
FAILED=$(echo "$DETAIL" | get .counts.failed)
CANCELLED=$(echo "$DETAIL" | get .counts.cancelled)
QUEUED=$(echo "$DETAIL" | get .counts.queued)
PROCESSING=$(echo "$DETAIL" | get .counts.processing)
echo "   counts: completed=$COMPLETED failed=$FAILED cancelled=$CANCELLED" \
  "queued=$QUEUED processing=$PROCESSING (total $TOTAL)"
[ "$QUEUED" = 0 ] && [ "$PROCESSING" = 0 ] || fail "Tasks still open in an ended batch"
[ $((COMPLETED + FAILED + CANCELLED)) = "$TOTAL" ] || fail "Counts do not add up to $TOTAL"
case "$BATCH_STATUS" in
  completed) [ "$COMPLETED" = "$TOTAL" ] ;;
  failed) [ "$FAILED" = "$TOTAL" ] ;;
  partially_completed) [ "$COMPLETED" -gt 0 ] && [ "$FAILED" -gt 0 ] ;;
  cancelled) [ "$CANCELLED" -gt 0 ] ;;
esac || fail "Status $BATCH_STATUS does not match the counts"
urls=0
for ((i = 0; i < TOTAL; i++)); do
  task_status=$(echo "$DETAIL" | get ".tasks[$i].status")
  url=$(echo "$DETAIL" | get ".tasks[$i].video_url")
  if [ "$task_status" = completed ]; then
    case "$url" in
      http://* | https://* | s3://* | gs://*) urls=$((urls + 1)) ;;
      *) fail "Task $i is completed without a video_url ($url)" ;;
    esac
    echo "   task $i: completed → $url"
  else
    [ "$url" = null ] || fail "Task $i is $task_status but has a video_url ($url)"
    echo "   task $i: $task_status ($(echo "$DETAIL" | get ".tasks[$i].error.code"))"
  fi
done
[ "$urls" = "$COMPLETED" ] || fail "$COMPLETED completed tasks but $urls video URLs"
echo "✅ Every task ended; $urls video URL(s) present"
echo

# -- 4) credits ----------------------------------------------------------------------------------
echo "4) 💳 Check the credits (charge, and refunds for failed or cancelled tasks) ..."
http GET "/api/enterprise/credits?limit=100" "" "x-api-key: $ENTERPRISE_API_KEY"
[ "$STATUS" = 200 ] || fail "Reading the credits failed: HTTP $STATUS" "$RESPONSE"
CREDITS="$RESPONSE"
if [ "$HAVE_JQ" = 1 ]; then
  CHARGED=$(echo "$CREDITS" | jq "[.ledger[] | select(.batch_id == \"$BATCH_ID\" and .kind == \"charge\") | -.delta] | add // 0")
  REFUNDS=$(echo "$CREDITS" | jq "[.ledger[] | select(.batch_id == \"$BATCH_ID\" and .kind == \"refund\")] | length")
  REFUNDED=$(echo "$CREDITS" | jq "[.ledger[] | select(.batch_id == \"$BATCH_ID\" and .kind == \"refund\") | .delta] | add // 0")
else
  read -r CHARGED REFUNDS REFUNDED < <(echo "$CREDITS" | python3 -c '
import json, sys
entries = [e for e in json.load(sys.stdin)["ledger"] if e["batch_id"] == sys.argv[1]]
charged = -sum(e["delta"] for e in entries if e["kind"] == "charge")
refunds = [e["delta"] for e in entries if e["kind"] == "refund"]
print(charged, len(refunds), sum(refunds))
' "$BATCH_ID")
fi
EXPECTED_REFUNDS=$((FAILED + CANCELLED))
echo "   charged $CHARGED, refunds $REFUNDS ($REFUNDED credits), available $(echo "$CREDITS" | get .available_credits)"
[ "$CHARGED" = "$REQUIRED" ] || fail "Charged $CHARGED credits for the batch, expected $REQUIRED (once)"
[ "$REFUNDS" = "$EXPECTED_REFUNDS" ] ||
  fail "$REFUNDS refund(s) for the batch, expected $EXPECTED_REFUNDS (one per failed or cancelled task)"
[ "$REFUNDED" = $((EXPECTED_REFUNDS * COST)) ] ||
  fail "Refunded $REFUNDED credits, expected $((EXPECTED_REFUNDS * COST))"
echo "✅ Credits: charged $CHARGED once, refunded $REFUNDED for $EXPECTED_REFUNDS unsuccessful task(s)"
echo

# -- 5) replay after the end ---------------------------------------------------------------------
echo "5) 🔁 Replay the original POST (same request_id) after the batch ended ..."
create
echo "$RESPONSE" | pretty
[ "$STATUS" = 200 ] || fail "Replay failed: HTTP $STATUS (expected 200)"
[ "$(echo "$RESPONSE" | get .idempotent_replay)" = true ] || fail "Replay failed: idempotent_replay is not true"
[ "$(echo "$RESPONSE" | get .batch_id)" = "$BATCH_ID" ] || fail "Replay failed: batch_id mismatch" \
  "First call:  $BATCH_ID" "Replay:      $(echo "$RESPONSE" | get .batch_id)"
REPLAY_STATUS=$(echo "$RESPONSE" | get .status)
[ "$REPLAY_STATUS" = "$BATCH_STATUS" ] ||
  fail "Replay failed: status $REPLAY_STATUS, expected the final status $BATCH_STATUS"
[ "$(echo "$RESPONSE" | get .available_credits)" = "$(echo "$CREDITS" | get .available_credits)" ] ||
  fail "Replay failed: available_credits differs from the balance"
echo "✅ Replay shows the final status: $REPLAY_STATUS (idempotent_replay: true, same batch_id)"
echo
echo "🎉 Seed flow passed: batch $BATCH_ID ended $BATCH_STATUS"
