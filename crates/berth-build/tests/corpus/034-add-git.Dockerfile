FROM busybox
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit
