FROM busybox
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --start-interval=1s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
