# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/server.sh: the server's runtime file (port, URL, token), HTTP probes, free ports.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Sets SERVER_PORT, SERVER_URL (base URL) and SERVER_TOKEN from jpserver-PID.json.
read_server_info() {
	local file=$JUPYTER_RUNTIME_DIR/jpserver-$1.json line
	SERVER_PORT="" SERVER_URL="" SERVER_TOKEN=""
	[[ -f $file ]] || return 1
	while IFS= read -r line || [[ -n $line ]]; do
		case $line in
		*'"port": '*) SERVER_PORT=${line#*: } SERVER_PORT=${SERVER_PORT%,} ;;
		*'"url": "'*) SERVER_URL=${line#*: \"} SERVER_URL=${SERVER_URL%\"*} ;;
		*'"token": "'*) SERVER_TOKEN=${line#*: \"} SERVER_TOKEN=${SERVER_TOKEN%\"*} ;;
		esac
	done <"$file"
	[[ $SERVER_PORT =~ ^[0-9]{1,5}$ && $SERVER_URL == http://* ]]
}

# Prints what the running server (read_server_info) answers a stranger (no token, no
# cookie): 200, its login page (auth is on; Jupyter logs that at debug level, where a
# refused API call would put a warning in the log); 000, nothing (yet); otherwise
# api:CODE, what its API answers (with auth off there is no login page: a 404, or a
# redirect for a user logged in by default).
stranger_answer() {
	local code
	code=$(http_status "${SERVER_URL%/}/login")
	[[ $code == 200 || $code == 000 ]] || code=api:$(http_status "${SERVER_URL%/}/api/status")
	printf '%s\n' "$code"
}

# The running server's API answers a stranger: a Jupyter config outside app.sh's
# control switched authentication off (an identity provider that lets everyone in) and
# start did not get to check it (a server left by a start that was interrupted).
server_accepts_strangers() { [[ $(stranger_answer) == api:2* ]]; }

# The message for such a server, with what to do.
readonly NO_AUTH_MESSAGE="answers without a token (a Jupyter config in .jupyter_config or JUPYTER_CONFIG_PATH switches authentication off): anyone on this machine can use it; stop it with: scripts/app.sh stop, and remove that setting"

lab_url() {
	local url=${SERVER_URL%/}/lab
	[[ -n $SERVER_TOKEN ]] && url+="?token=$SERVER_TOKEN"
	printf '%s\n' "$url"
}

# Prints the HTTP status of URL (000 when nothing answers), sending TOKEN when given.
# Bash's /dev/tcp asks without spawning anything; curl, then Python, where bash was
# built without it. The token goes to them on stdin, never in an argument, since any
# user can read a process's arguments.
http_status() {
	if [[ ${3:-} == query ]]; then
		http_status_query "$1" "$2"
		return 0
	fi
	local authority=${1#http://} token=${2:-} status="" header=""
	local path=/${authority#*/}
	authority=${authority%%/*}
	if { exec 3<>"/dev/tcp/${authority%:*}/${authority##*:}"; } 2>/dev/null; then
		[[ -n $token ]] && header="Authorization: token $token"$'\r\n'
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n%s\r\n' "$path" "$authority" "$header" >&3
		read -r -t 5 _ status _ <&3 || true
		exec 3<&-
		printf '%s\n' "${status:-000}"
	elif command -v curl >/dev/null 2>&1; then
		# -K -: curl reads options from stdin; with no token, an empty config.
		printf '%s' "${token:+header = \"Authorization: token $token\"}" |
			curl -s -o /dev/null -w '%{http_code}' --max-time 5 -K - "$1" || true
	else
		printf '%s' "$token" | "$JUPYTER_PYTHON" -I -S -c '
import sys, urllib.error, urllib.request
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # the status of the URL asked, as bash and curl give it
token = sys.stdin.read()
headers = {"Authorization": "token " + token} if token else {}
try:
    print(urllib.request.build_opener(Keep).open(urllib.request.Request(sys.argv[1], headers=headers), timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")' "$1"
	fi
}

# http_status URL TOKEN query: the token as jupyverse takes it, in the query string
# (it answers the Authorization header with 403). Still in no argument: bash writes
# the request itself; curl reads the URL from its config on stdin; Python from stdin.
http_status_query() {
	local authority=${1#http://} token=$2 status="" url
	local path=/${authority#*/}
	authority=${authority%%/*}
	url="$1?token=$token"
	if { exec 3<>"/dev/tcp/${authority%:*}/${authority##*:}"; } 2>/dev/null; then
		printf 'GET %s?token=%s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$token" "$authority" >&3
		read -r -t 5 _ status _ <&3 || true
		exec 3<&-
		printf '%s\n' "${status:-000}"
	elif command -v curl >/dev/null 2>&1; then
		printf 'url = "%s"\n' "$url" | curl -s -o /dev/null -w '%{http_code}' --max-time 5 -K - || true
	else
		printf '%s' "$url" | "$JUPYTER_PYTHON" -I -S -c '
import sys, urllib.error, urllib.request
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
try:
    print(urllib.request.build_opener(Keep).open(sys.stdin.read(), timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")'
	fi
}

# Prints the first port of FIRST..LAST that is free on 127.0.0.1; fails when none is.
# Free means bindable the way Tornado binds (SO_REUSEADDR, so a TIME_WAIT socket does
# not count as busy) and nothing accepts connections on it. No lsof: it is missing on
# many Linux images and does not see other users' sockets.
find_free_port() {
	"$JUPYTER_PYTHON" -I -S -c '
import socket, sys
for port in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    probe = socket.socket()
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        probe.close()
    client = socket.socket()
    client.settimeout(0.2)
    try:
        if client.connect_ex(("127.0.0.1", port)) == 0:
            continue
    finally:
        client.close()
    print(port)
    sys.exit(0)
sys.exit(1)' "$1" "$2"
}

# Tells, on stderr, what listens on the ports FIRST..LAST, as far as this machine
# lets us see: Jupyter servers by their command line (which names their notebook
# directory, so their project), anything else through lsof where it is installed.
describe_port_holders() {
	local first=$1 last=$2 i args port dir pid="" line seen=" "
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		args=${PS_ARGS[i]}
		is_jupyter_server "$args" && [[ $args == *" --port="* ]] || continue
		port=${args##*" --port="} port=${port%% *}
		[[ $port =~ ^[0-9]+$ ]] || continue
		((port >= first && port <= last)) || continue
		dir=""
		if [[ $args == *" --notebook-dir="* ]]; then dir=${args##*" --notebook-dir="} dir=${dir%% --*}; fi
		printf '    port %s: Jupyter server, PID %s%s\n' "$port" "${PS_PIDS[i]}" "${dir:+, notebooks in $dir}" >&2
		seen+="$port "
	done
	command -v lsof >/dev/null 2>&1 || return 0
	while IFS= read -r line; do
		case $line in
		p*) pid=${line#p} ;;
		n*)
			port=${line##*:}
			[[ $seen == *" $port "* ]] && continue
			seen+="$port "
			args=$(args_of "$pid" || echo "another user's process")
			printf '    port %s: PID %s: %s\n' "$port" "$pid" "${args:0:70}" >&2
			;;
		esac
	done <<<"$(lsof -nP -iTCP:"$first-$last" -sTCP:LISTEN -Fpn 2>/dev/null)"
	return 0
}

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
