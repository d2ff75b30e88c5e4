FROM busybox
COPY --exclude=*.md --exclude=tmp --parents src/*/x /dst/
