FROM busybox
ONBUILD COPY . /app
ONBUILD RUN make
