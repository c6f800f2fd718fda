# shellcheck shell=bash
# A transfer job's body (after transfer_prelude.sh): an object the client uploaded to the
# staging store goes to TARGET on the cluster.
# Header variables: TARGET, SIZE (announced bytes), HEAD_URL, GET_URL, DELETE_URL (presigned).
F7T_TMP_DIR=$(dirname -- "$TARGET")
F7T_TMP="$F7T_TMP_DIR/.$(basename -- "$TARGET").firecrest-$F7T_ID.part"
trap 'rm -f -- "$F7T_TMP"' EXIT
trap 'exit 143' TERM INT HUP
progress 0
# 1. wait until the client has completed the upload (or the URLs expire). Some stores (s3rver)
# show an object while they still assemble it: a size below the announced one must hold still
# for 3 s or more before it counts as a mismatch.
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
last="" last_ms=0 still_since=$SECONDS waiting_since=$SECONDS pace_ms=""
while :; do
  # looks paced from when the last one began: each second between the client's completing the
  # upload and the next look is a second added to the transfer. Every quarter second for the
  # first 20 s of the wait (a small or fast upload: the object is there any moment), every half
  # second up to a minute, then every second (an upload that takes long: a HEAD per second).
  # While the object grows, the next look is when it should be whole at the rate it grows: a
  # HEAD during the assembly slows it (s3rver assembled 1 GiB in 3.6 s alone, in 5.1 s with a
  # HEAD every quarter second).
  if [ -n "$pace_ms" ]; then :
  elif [ $((SECONDS - waiting_since)) -lt 20 ]; then pace_ms=250
  elif [ $((SECONDS - waiting_since)) -lt 60 ]; then pace_ms=500
  else pace_ms=1000; fi
  sleep "$((pace_ms / 1000)).$(printf '%03d' $((pace_ms % 1000)))" &
  pace=$!
  pace_ms=""
  hdrs=$(curl_url "$HEAD_URL" -s -I --max-time 60) || hdrs=""
  code=$(printf '%s\n' "$hdrs" | status_of)
  case $code in
    200)
      length=$(printf '%s\n' "$hdrs" | header content-length)
      if [ "$length" = "$SIZE" ]; then break; fi
      t_ms=$(now_ms)
      if [ "$length" != "$last" ]; then
        if [ -n "$last" ] && [ "${length:-0}" -gt "$last" ] 2>/dev/null && [ "$t_ms" -gt "$last_ms" ]; then
          pace_ms=$(( (SIZE - length) * (t_ms - last_ms) / (length - last) ))
          if [ "$pace_ms" -gt 5000 ]; then pace_ms=5000; elif [ "$pace_ms" -lt 100 ]; then pace_ms=100; fi
        else
          pace_ms=500  # first seen growing: how fast, the next look tells
        fi
        last=$length last_ms=$t_ms still_since=$SECONDS
      elif [ $((SECONDS - still_since)) -ge 4 ]; then
        break  # (SECONDS counts whole seconds: 4 of them is 3 s or more)
      else
        pace_ms=1000
      fi ;;
    404) ;;
    403)
      if expired; then fail URL_EXPIRED "the upload was not completed before its URLs expired"; fi
      fail STAGING_ERROR "the staging store refused the transfer's URL (HTTP 403)" ;;
    "" | 000 | 5*) ;;
    *) fail STAGING_ERROR "unexpected answer from the staging store (HTTP $code)" ;;
  esac
  if expired; then fail URL_EXPIRED "the upload was not completed before its URLs expired"; fi
  wait "$pace" || true
done
kill "$pace" 2>/dev/null || true
progress 0.5
if [ "$length" != "$SIZE" ]; then
  curl_url "$DELETE_URL" -s -X DELETE -o /dev/null
  fail SIZE_MISMATCH "the uploaded object has ${length:-an unknown number of} bytes, $SIZE were announced"
fi
# 2. fetch it into a hidden temporary file next to the target
if [ -d "$TARGET" ]; then fail INVALID "cannot overwrite '$TARGET': Is a directory"; fi
run bash -c 'umask 077; set -C; : > "$1"' sh "$F7T_TMP"
errf=$(mktemp "$F7T_DIR/stderr.XXXXXX")
hashing file sha256  # the checksum of the bytes as they arrive
curl_url "$GET_URL" -sS -f -o - 2>"$errf.curl" | tee -- "$F7T_DIR/file.fifo" > "$F7T_TMP" 2>"$errf"
st=("${PIPESTATUS[@]}")
hashed file
sha=$HASH
if [ "${st[1]}" -ne 0 ]; then
  err=$(cat -- "$errf"); cat -- "$errf" >&2
  fail "$(classify "$err")" "cannot write '$F7T_TMP': $err"
fi
if [ "${st[0]}" -ne 0 ]; then
  err=$(cat -- "$errf.curl"); cat -- "$errf.curl" >&2
  if expired; then fail URL_EXPIRED "the download URL expired: $err"; fi
  fail STAGING_ERROR "fetching the uploaded object failed: $err"
fi
rm -f -- "$errf" "$errf.curl"
progress 0.8
# 3. verify, then move it into place atomically (same directory: a rename)
got=$(stat -c %s -- "$F7T_TMP")
if [ "$got" != "$SIZE" ]; then fail SIZE_MISMATCH "received $got bytes, $SIZE were announced"; fi
if [ -e "$TARGET" ] && [ ! -L "$TARGET" ]; then
  chmod --reference="$TARGET" -- "$F7T_TMP" 2>/dev/null
else
  chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" -- "$F7T_TMP"
fi
run mv -f -T -- "$F7T_TMP" "$TARGET"
printf '%s%s\n%s%s\n' "$F7T_SHA256" "$sha" "$F7T_BYTES" "$got"
report OK "$TARGET"
echo "$F7T_SUCCESS to $TARGET"
# 4. the staged object is not needed any more (after the report: the task is done meanwhile)
code=$(curl_url "$DELETE_URL" -s -X DELETE -o /dev/null -w '%{http_code}') || code=000
case $code in 2*) ;; *) echo "could not delete the staged object (HTTP $code); the gateway will" >&2 ;; esac
