FROM busybox
COPY <<EOF /etc/motd
Welcome
EOF
