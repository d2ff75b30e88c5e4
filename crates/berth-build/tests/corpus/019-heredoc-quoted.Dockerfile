FROM busybox
RUN cat <<'EOF' > /x
$NOT_EXPANDED
EOF
