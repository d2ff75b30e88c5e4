FROM busybox
COPY ["with space.txt", "/dst dir/"]
