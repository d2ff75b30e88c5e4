FROM busybox
LABEL "com.example.vendor"="ACME Inc" version="1.0" description="multi \
line"
