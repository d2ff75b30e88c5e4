from busybox as Base
run echo lower
copy a /b
