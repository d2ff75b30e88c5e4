FROM busybox
RUN <<-EOT
	echo tabbed
	EOT
