#!/bin/sh
# slurm-lwk preremove (.deb prerm, .rpm %preun). On removal (not upgrade):
# refuse while an LWK instance or a job journal exists on this node, since
# without lwk-epilog nothing could give its CPUs and memory back to Linux;
# then stop lwk-monitor if it runs. With LWK_PRERM_CHECK_ONLY set (the
# plugin package's prerm runs this one so), only the refusal.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
conf=/etc/slurm/lwk.conf
if [ -r "$conf" ] && [ -x /usr/bin/lwkctl ]; then
	# A node lwkctl cannot read (no IHK driver, a broken lwk.conf) is not
	# blocked: there is nothing this package could still tear down there.
	if status=$(/usr/bin/lwkctl status --json --config "$conf" 2>/dev/null); then
		# Indented JSON: a non-empty list opens with '[' at the end of its line.
		if printf '%s\n' "$status" | grep -Eq '"(os_instances|jobs)": \[$'; then
			echo "slurm-lwk: an LWK instance or a job journal is on this node (lwkctl status);" >&2
			echo "slurm-lwk: drain the node and let the epilogs finish, or run lwkctl cleanup --job ID, then remove" >&2
			exit 1
		fi
	fi
fi
[ -z "${LWK_PRERM_CHECK_ONLY:-}" ] || exit 0
if [ -d /run/systemd/system ]; then
	systemctl stop lwk-monitor.service lwk-account-catchup.timer >/dev/null 2>&1 || true
fi
exit 0
