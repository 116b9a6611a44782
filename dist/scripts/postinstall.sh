#!/bin/sh
# slurm-lwk postinstall (.deb postinst, .rpm %post): create the root-only
# runtime directories now (tmpfiles.d makes them at every boot) and let
# systemd see the lwk-monitor unit. Nothing is enabled or started: the admin
# does that (systemctl enable --now lwk-monitor) after configuring the node.
set -e
case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/slurm-lwk.conf || true
fi
# Without systemd-tmpfiles (or when it failed): same directories, same modes.
for d in /run/slurm-lwk /run/slurm-lwk/state; do
	[ -d "$d" ] || mkdir -m 0700 "$d"
done
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
