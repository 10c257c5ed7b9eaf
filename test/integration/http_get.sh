# Sourced by the test scripts: an HTTP GET with nothing but bash (/dev/tcp) and
# coreutils, so that the health endpoint is tested where curl is missing.
#
#   http_get PORT PATH   sets HTTP_CODE (e.g. 200, 503; empty when no answer) and
#                        HTTP_BODY; returns 1 when nothing answered.
http_get() {
    HTTP_CODE=""
    HTTP_BODY=""
    local response
    response=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
        cat <&3' http_get "$1" "$2" 2>/dev/null | tr -d '\r') || return 1
    HTTP_CODE=$(sed -n '1s|^HTTP/1\.[01] \([0-9][0-9][0-9]\).*|\1|p' <<<"$response")
    HTTP_BODY=$(sed '1,/^$/d' <<<"$response")
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
