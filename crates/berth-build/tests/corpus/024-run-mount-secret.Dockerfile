FROM busybox
RUN --mount=type=secret,id=aws,target=/root/.aws/credentials aws s3 ls
