# shellcheck shell=bash
# A transfer job's body (after transfer_prelude.sh): SOURCE on the cluster goes to the staging
# store (one PUT, or a multipart upload), where the client downloads it.
# Header variables: SOURCE, SIZE, HEAD_URL, PUT_URL, PART_SIZE, PART_URLS (array; empty for a
# single PUT), COMPLETE_URL (presigned).
trap 'exit 143' TERM INT HUP
progress 0
if [ ! -e "$SOURCE" ]; then fail SOURCE_MISSING "cannot access '$SOURCE': No such file or directory"; fi
if [ ! -r "$SOURCE" ]; then fail PERMISSION_DENIED "cannot read '$SOURCE': Permission denied"; fi
if [ ! -f "$SOURCE" ]; then fail INVALID "'$SOURCE' is not a regular file"; fi
got=$(stat -L -c %s -- "$SOURCE")
if [ "$got" != "$SIZE" ]; then
  fail SIZE_MISMATCH "'$SOURCE' changed size since the transfer was requested ($SIZE -> $got bytes)"
fi
# the file's checksum (reported with the result: the client can check what it downloads) is taken
# of the bytes as they go out: the source is read once. Parts are not checked against the ETag the
# store answers: that is the MD5 of the data only without server-side encryption (AWS SSE-KMS and
# SSE-C, MinIO and Ceph with encryption answer other ETags, and every download would fail there),
# and in transit TCP (and TLS to a real store) guards the bytes; an MD5 per part also cost a second
# hashing process beside the copy (1 GiB out: its parts in 5.5 s with it, 4.4 s without).
hashing file sha256
# put one range of the source ($1 offset, $2 length) to URL $3; PUT_ETAG is the store's answer
put_range() {
  local hdrs code etag
  hdrs=$(dd if="$SOURCE" bs=4M iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none |
    tee -- "$F7T_DIR/file.fifo" |
    curl_url "$3" -sS -T - -H "Content-Length: $2" -H 'Transfer-Encoding:' -H 'Expect:' -D - -o /dev/null) || {
    fail STAGING_ERROR "the staging store could not be reached"; }
  code=$(printf '%s\n' "$hdrs" | status_of)
  case $code in
    2*) ;;
    403) if expired; then fail URL_EXPIRED "the upload URL expired"; fi
         fail STAGING_ERROR "the staging store refused the upload (HTTP 403)" ;;
    *) fail STAGING_ERROR "the staging store refused the upload (HTTP $code)" ;;
  esac
  etag=$(printf '%s\n' "$hdrs" | header etag)
  if [ -z "$etag" ]; then fail STAGING_ERROR "the staging store answered the upload without an ETag"; fi
  PUT_ETAG=$etag
}
if [ "${#PART_URLS[@]}" -eq 0 ]; then
  put_range 0 "$SIZE" "$PUT_URL"
else
  n=${#PART_URLS[@]}
  xml="$F7T_DIR/complete.xml"
  printf '<CompleteMultipartUpload>' > "$xml"
  for ((i = 0; i < n; i++)); do
    off=$((i * PART_SIZE))
    len=$((SIZE - off < PART_SIZE ? SIZE - off : PART_SIZE))
    put_range "$off" "$len" "${PART_URLS[$i]}"
    printf '<Part><PartNumber>%d</PartNumber><ETag>"%s"</ETag></Part>' $((i + 1)) "$PUT_ETAG" >> "$xml"
    progress "$(awk -v a=$((i + 1)) -v b="$n" 'BEGIN{printf "%.2f", 0.9 * a / b}')"
  done
  printf '</CompleteMultipartUpload>' >> "$xml"
  code=$(curl_url "$COMPLETE_URL" -s -X POST -H 'Content-Type: application/xml' --data-binary @"$xml" \
    -o "$F7T_DIR/complete.out" -w '%{http_code}') || code=000
  if [ "$code" != 200 ] || grep -q '<Error>' "$F7T_DIR/complete.out"; then
    cat -- "$F7T_DIR/complete.out" >&2
    fail STAGING_ERROR "completing the multipart upload failed (HTTP $code)"
  fi
  rm -f -- "$xml" "$F7T_DIR/complete.out"
fi
hashed file
sha=$HASH
hdrs=$(curl_url "$HEAD_URL" -s -I --max-time 60) || hdrs=""
length=$(printf '%s\n' "$hdrs" | header content-length)
if [ "$length" != "$SIZE" ]; then fail SIZE_MISMATCH "the staged object has ${length:-no} bytes, $SIZE expected"; fi
printf '%s%s\n%s%s\n' "$F7T_SHA256" "$sha" "$F7T_BYTES" "$SIZE"
report OK "$SOURCE"
echo "$F7T_SUCCESS: $SOURCE"
