FROM busybox
RUN cat <<A > /a && cat <<B > /b
first
A
second
B
