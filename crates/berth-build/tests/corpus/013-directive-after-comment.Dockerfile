# hello
# escape=`
FROM busybox
