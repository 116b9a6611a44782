#!/bin/sh
# slurm-lwk-spank prerm. apt removes this package before slurm-lwk, which it
# depends on, so slurm-lwk's refusal (an LWK instance or a job journal on the
# node) must stop the removal here already: else a refused removal still
# takes the plugin away and plugstack.conf names a missing file. The check is
# slurm-lwk's own prerm, run in check-only mode (lwk-monitor keeps running).
set -e
[ "$1" = remove ] || exit 0
prerm=/var/lib/dpkg/info/slurm-lwk.prerm
[ -x "$prerm" ] || exit 0
LWK_PRERM_CHECK_ONLY=1 "$prerm" remove
