#!/bin/sh
# vmnet-e2e evidence collector.
#
# Usage: evidence STAGE [NONCE]
#
# Collects what the guest did with its network configuration (cloud-init's
# status and warnings, the files its renderer wrote, every link with its MAC,
# state and addresses) and prints it on the serial console for the vmnet-e2e
# harness. STAGE is "network" (networking has settled, cloud-init may still
# run) or "final" (cloud-init has finished). Without NONCE the nonce comes
# from the kernel command line (vmnet_e2e.nonce=); with neither, nothing is
# printed.
#
# Output, repeated twice so that a line broken by a kernel message on the
# same console can be taken from the other copy:
#   VMNET-E2E-EVIDENCE <nonce> <stage> BEGIN <chunks> <sha256 of the base64 text>
#   VMNET-E2E-EVIDENCE <nonce> <stage> <index> <chunk hash> <64 base64 characters>
#   VMNET-E2E-EVIDENCE <nonce> <stage> END
# The base64 text is a gzipped tar of the collected files. The chunk hash is
# h = (h*67 + position of the character in the base64 alphabet, from 1)
# modulo 2147483647 over the chunk, printed as 8 hex digits.
#
# Needs only POSIX sh, awk, tar, gzip, base64, sha256sum and iproute2, so the
# same script runs on any cloud-init guest.

set -u

stage=${1:?usage: evidence STAGE [NONCE]}
nonce=${2:-}
settle_seconds=30
for arg in $(cat /proc/cmdline 2>/dev/null); do
	case $arg in
	vmnet_e2e.nonce=*) [ -n "$nonce" ] || nonce=${arg#vmnet_e2e.nonce=} ;;
	vmnet_e2e.settle=*) settle_seconds=${arg#vmnet_e2e.settle=} ;;
	esac
done
[ -n "$nonce" ] || exit 0

# The serial console: ttyS0 is where KubeVirt and the local provider connect
# the serial port. VMNET_E2E_EVIDENCE_OUT redirects the output (tests).
console=/dev/console
for dev in /dev/ttyS0 /dev/console; do
	if [ -c "$dev" ] && [ -w "$dev" ]; then
		console=$dev
		break
	fi
done
console=${VMNET_E2E_EVIDENCE_OUT:-$console}

work=$(mktemp -d /run/vmnet-e2e-evidence.XXXXXX) || exit 0
trap 'rm -rf "$work"' EXIT
out=$work/evidence
mkdir -p "$out/files"

# networkd_states prints "<link> <setup state>" for every link but lo, from
# the state files systemd-networkd writes (ADMIN_STATE in
# /run/systemd/netif/links/<ifindex>). networkctl would need D-Bus, which is
# not up yet when the early unit runs. A link networkd has not seen yet has
# no file and shows as "unknown".
networkd_states() {
	for dev in /sys/class/net/*; do
		name=${dev##*/}
		[ "$name" = lo ] && continue
		index=$(cat "$dev/ifindex" 2>/dev/null) || continue
		state=$(sed -n 's/^ADMIN_STATE=//p' "/run/systemd/netif/links/$index" 2>/dev/null)
		echo "$name ${state:-unknown}"
	done
}

# Wait until systemd-networkd has finished with every link (each one is
# configured, unmanaged, failed or linger), for at most settle_seconds. A
# link that never gets a DHCP lease stays "configuring", so the wait is
# bounded, and the links still pending are kept in networkd-pending.txt.
# Without networkd (ifupdown), the unit's ordering after networking.service
# is the wait.
wait_networkd_settled() {
	systemctl is-active --quiet systemd-networkd.service 2>/dev/null || return 0
	tries=$((settle_seconds * 2))
	while :; do
		pending=$(networkd_states | awk '$2 !~ /^(configured|unmanaged|failed|linger)$/ { print $1 ":" $2 }')
		[ -z "$pending" ] && break
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || break
		sleep 0.5
	done
	printf '%s\n' "$pending" >"$out/networkd-pending.txt"
}

collect() {
	printf '%s\n' "$stage" >"$out/stage"
	printf '%s\n' "$nonce" >"$out/nonce"
	cat /proc/sys/kernel/random/boot_id >"$out/boot_id" 2>/dev/null
	cut -d' ' -f1 /proc/uptime >"$out/uptime" 2>/dev/null

	for f in /run/cloud-init/status.json /run/cloud-init/result.json; do
		[ -f "$f" ] && cat "$f" >"$out/${f##*/}"
	done
	timeout 30 cloud-init status --long >"$out/cloud-init-status.txt" 2>&1
	echo "$?" >"$out/cloud-init-status.rc"
	if [ -f /var/log/cloud-init.log ]; then
		grep -E '\[(WARNING|ERROR|CRITICAL)\]' /var/log/cloud-init.log | tail -n 200 >"$out/cloud-init-warnings.log"
	fi

	ip -j addr show >"$out/ip-addr.json" 2>"$out/ip-addr.err"
	# udev's names for each link, so that a link renamed by set-name can
	# still be traced to its PCI path name (enp2s0).
	for dev in /sys/class/net/*; do
		udevadm info --query=property --path="$dev" 2>/dev/null |
			grep -E '^(ID_NET_NAME_PATH|ID_NET_NAME_SLOT|ID_PATH|ID_NET_DRIVER)=' |
			sed "s|^|${dev##*/} |"
	done >"$out/udev-net.txt"
	ip -j route show table all >"$out/ip-route.json" 2>/dev/null
	networkctl list --no-legend --no-pager >"$out/networkctl.txt" 2>&1
	if systemctl is-active --quiet systemd-networkd.service 2>/dev/null; then
		networkd_states >"$out/networkd-states.txt"
	fi
	systemctl list-units --failed --no-legend --plain --no-pager >"$out/failed-units.txt" 2>&1
	systemctl is-system-running >"$out/system-state.txt" 2>&1

	for f in /etc/netplan/* /run/systemd/network/* /etc/systemd/network/* \
		/etc/network/interfaces /etc/network/interfaces.d/* \
		/etc/sysconfig/network-scripts/ifcfg-* /etc/NetworkManager/system-connections/*; do
		[ -f "$f" ] || continue
		mkdir -p "$out/files${f%/*}"
		cat "$f" >"$out/files$f"
	done

	tar -C "$out" -czf "$work/evidence.tgz" .
}

emit() {
	base64 -w 0 <"$work/evidence.tgz" >"$work/evidence.b64"
	sum=$(sha256sum <"$work/evidence.b64" | cut -d' ' -f1)
	awk -v nonce="$nonce" -v stage="$stage" -v sum="$sum" -v width=64 '
		BEGIN {
			alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
			for (i = 1; i <= length(alphabet); i++) position[substr(alphabet, i, 1)] = i
		}
		{ data = data $0 }
		END {
			n = int((length(data) + width - 1) / width)
			printf "VMNET-E2E-EVIDENCE %s %s BEGIN %d %s\n", nonce, stage, n, sum
			for (c = 0; c < n; c++) {
				chunk = substr(data, c * width + 1, width)
				h = 0
				for (j = 1; j <= length(chunk); j++) h = (h * 67 + position[substr(chunk, j, 1)]) % 2147483647
				printf "VMNET-E2E-EVIDENCE %s %s %d %08x %s\n", nonce, stage, c, h, chunk
			}
			printf "VMNET-E2E-EVIDENCE %s %s END\n", nonce, stage
		}' "$work/evidence.b64" >"$work/block"

	# One write(2) per copy: the tty keeps other writers' lines out of it,
	# only kernel messages can land inside.
	cat "$work/block" >>"$console"
	sleep 1
	cat "$work/block" >>"$console"
}

[ "$stage" = network ] && wait_networkd_settled
collect
emit
exit 0
