#!/bin/sh
# slurm-lwk postremove (.deb postrm, .rpm %postun). On removal: the runtime
# directory /run/slurm-lwk goes, unless a job journal or run marker is still
# in it (the pre-removal check could not ask lwkctl); so does the simulated
# backend's state. The kernel logs in /var/log/slurm-lwk stay until purge
# (.deb; rpm removes that directory only when empty). /etc/slurm/lwk.conf is
# the admin's: a .deb keeps the conffile until purge, rpm keeps an edited
# %config(noreplace) file as lwk.conf.rpmsave.
set -e
# remove_run deletes /run/slurm-lwk unless it holds a journal or marker.
remove_run() {
	[ -d /run/slurm-lwk ] || return 0
	# Journals, and the run markers the prolog leaves at the top (job-N,
	# job-N.cgroup); not the epilog's ended records (state/ended/job-N.M),
	# which only outlive a finished job.
	if find /run/slurm-lwk -type f \( -path '*/journal/*' -o -path '/run/slurm-lwk/job-*' \) | grep -q .; then
		echo "slurm-lwk: /run/slurm-lwk still holds job journals or markers; left in place" >&2
		return 0
	fi
	rm -rf /run/slurm-lwk
}
case "$1" in
remove | 0)
	remove_run
	# The simulated backend's state (IHKBackend=sim), nothing else there.
	rm -rf /var/lib/slurm-lwk/sim
	rmdir /var/lib/slurm-lwk 2>/dev/null || true
	;;
purge)
	remove_run
	rm -rf /var/lib/slurm-lwk/sim /var/log/slurm-lwk /var/spool/slurm-lwk
	rmdir /var/lib/slurm-lwk 2>/dev/null || true
	;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
