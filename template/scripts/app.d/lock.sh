# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/lock.sh: the project lock: one app.sh command at a time changes a project's state.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# One app.sh command at a time changes this project's state (mkdir is atomic
# everywhere; flock does not exist on macOS).

acquire_lock() {
	[[ $LOCK_HELD == 1 ]] && return 0
	local owner="" script="" failures=0 waiting=0 deadline=$((SECONDS + LOCK_TIMEOUT + 1)) unnamed_since=""
	private_dir "$LOG_DIR"
	until mkdir "$LOCK_DIR" 2>/dev/null; do
		if [[ -e $LOCK_DIR && ! -d $LOCK_DIR ]]; then
			die "$(rel "$LOCK_DIR") is a file, where app.sh keeps its lock directory; remove it and try again"
		elif [[ ! -d $LOCK_DIR ]]; then
			# Usually its holder released it between our mkdir and this test: try again.
			((++failures < 10)) || die "cannot create $(rel "$LOCK_DIR"); is the disk full or read-only?"
			continue
		fi
		failures=0 owner="" script=""
		{ read -r owner && read -r script; } 2>/dev/null <"$LOCK_DIR/pid" || true
		# An older app.sh wrote its PID only: its command line names app.sh.
		script=${script:-app.sh}
		if [[ -n $owner ]] && ! lock_owner_alive "$owner" "$script"; then
			break_stale_lock "$owner" # its app.sh is gone, or the PID now names another program
			continue
		fi
		if ((! waiting)); then
			say "waiting for another app.sh command in this project${owner:+ (PID $owner)}..."
			waiting=1
		fi
		# An owner that never wrote its PID died between mkdir and write.
		if [[ -z $owner ]]; then
			unnamed_since=${unnamed_since:-$SECONDS}
			if ((SECONDS - unnamed_since >= 5)); then
				break_stale_lock ""
				unnamed_since=""
				continue
			fi
		fi
		if ((SECONDS >= deadline)); then
			die "another app.sh command (PID ${owner:-unknown}) still holds $(rel "$LOCK_DIR"); if none is running, remove that directory"
		fi
		sleep 0.1
	done
	claim_lock
}

# Takes the lock only if it is free, without waiting (status tidying up): 0 when taken.
try_lock() {
	mkdir "$LOCK_DIR" 2>/dev/null || return 1
	claim_lock
}

# Names this command in the lock it has just created.
claim_lock() {
	# The script's name as invoked identifies the holder, should its PID be reused.
	if ! printf '%s\n%s\n' "$$" "$0" 2>/dev/null >"$LOCK_DIR/pid"; then
		rm -rf "$LOCK_DIR"
		die "cannot write in $(rel "$LOG_DIR"); is the disk full? Free some space and try again"
	fi
	LOCK_HELD=1
}

# Whether the lock holder PID still runs the app.sh named SCRIPT. After a reboot or a
# container restart, the PID in a stale lock may name an unrelated process (PID 1 in a
# container); its command line tells. A holder whose command line cannot be read is
# taken to be alive. The command line is read once per holder.
lock_owner_alive() {
	local pid=$1 script=$2 args
	# Junk names no holder (kill -0 -1 or 0 would ask about a whole group).
	[[ $pid =~ ^[1-9][0-9]{0,9}$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ $pid != "$LOCK_OWNER_VERIFIED" ]] || return 0
	load_process_table
	args=$(args_of "$pid") || return 0
	[[ $args == *"$script"* ]] || return 1
	LOCK_OWNER_VERIFIED=$pid
}

# Removes the lock left by a dead command, if it is still the one we saw: two commands
# that saw the same stale lock must not both remove it, or the second would remove the
# lock the first has just taken. Breakers take turns under a second mkdir lock, held
# for microseconds; one left by a breaker killed in between is removed after 5 s.
break_stale_lock() {
	local seen=$1 owner=""
	if ! mkdir "$LOCK_DIR.break" 2>/dev/null; then
		if ((++BREAK_TRIES >= 50)); then
			rmdir "$LOCK_DIR.break" 2>/dev/null || true
			BREAK_TRIES=0
		fi
		sleep 0.1
		return 0
	fi
	BREAK_TRIES=0
	read -r owner 2>/dev/null <"$LOCK_DIR/pid" || true
	if [[ -d $LOCK_DIR && $owner == "$seen" ]]; then rm -rf "$LOCK_DIR"; fi
	rmdir "$LOCK_DIR.break" 2>/dev/null || true
}

release_lock() {
	if [[ $LOCK_HELD == 1 ]]; then
		rm -rf "$LOCK_DIR"
		LOCK_HELD=0
	fi
}
