# syntax=a
# syntax=b
FROM busybox
