# Sourced by the test scripts: HTTP requests with nothing but bash (/dev/tcp) and
# coreutils, so that the health endpoint is tested where curl is missing.
#
#   http_get PORT PATH   sets HTTP_CODE (e.g. 200, 503; empty when no answer),
#                        HTTP_BODY and HTTP_ALLOW (the Allow header); returns 1
#                        when nothing answered.
#   http_request METHOD PORT PATH   the same with another method.
#   http_flood METHOD PORT PATH MIB   sends a chunked body of MIB MiB (the server
#                        may answer and close before it is all sent); sets HTTP_CODE.
#   http_header_flood PORT PATH MIB   a GET with MIB MiB of 8 KiB headers; the same.
http_get() { http_request GET "$1" "$2"; }

http_request() {
    HTTP_CODE=""
    HTTP_BODY=""
    HTTP_ALLOW=""
    local response
    response=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$2" || exit 1
        printf "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" "$3" >&3
        cat <&3' http_request "$1" "$2" "$3" 2>/dev/null | tr -d '\r') || return 1
    HTTP_CODE=$(sed -n '1s|^HTTP/1\.[01] \([0-9][0-9][0-9]\).*|\1|p' <<<"$response")
    HTTP_ALLOW=$(sed -n '1,/^$/s|^[Aa]llow: *||p' <<<"$response")
    HTTP_BODY=$(sed '1,/^$/d' <<<"$response")
    [ -n "$HTTP_CODE" ]
}

http_flood() {
    HTTP_CODE=$(timeout 120 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$2" || exit 1
        (printf "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" "$1" "$3"
         for ((i = 0; i < $4; i++)); do
             printf "100000\r\n" && head -c 1048576 /dev/zero && printf "\r\n" || exit
         done
         printf "0\r\n\r\n") >&3 2>/dev/null &
        head -n 1 <&3 | tr -d "\r" | sed -n "s|^HTTP/1\.[01] \([0-9][0-9][0-9]\).*|\1|p"
        kill $! 2>/dev/null' http_flood "$1" "$2" "$3" "$4")
    [ -n "$HTTP_CODE" ]
}

http_header_flood() {
    HTTP_CODE=$(timeout 120 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        (printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" "$2"
         value=$(head -c 8000 /dev/zero | tr "\0" a)
         for ((i = 0; i < $3 * 128; i++)); do printf "X-%d: %s\r\n" $i "$value" || exit; done
         printf "\r\n") >&3 2>/dev/null &
        head -n 1 <&3 | tr -d "\r" | sed -n "s|^HTTP/1\.[01] \([0-9][0-9][0-9]\).*|\1|p"
        kill $! 2>/dev/null' http_header_flood "$1" "$2" "$3")
    [ -n "$HTTP_CODE" ]
}

# prometheus_text_ok TEXT: every line is a "# HELP"/"# TYPE" comment or a sample
# "name{labels} value" of a metric whose TYPE came first.
prometheus_text_ok() {
    awk '
        /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* / { next }
        /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/ { typed[$3] = 1; next }
        /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? ([-+]?[0-9.eE+-]+|NaN|[+-]Inf)$/ {
            name = $0; sub(/[{ ].*/, "", name); base = name
            sub(/_(bucket|sum|count)$/, "", base)
            if (!(name in typed) && !(base in typed)) { print "sample before its TYPE: " $0; bad = 1 }
            next
        }
        { print "not Prometheus text: " $0; bad = 1 }
        END { exit bad }' <<<"$1"
}
