"""Patterns and lists shared by the triage rules.

What: regular expressions for download-and-execute, miners, escape commands, secrets
and attack strings, plus path and name lists (sensitive host paths, runtime sockets,
miner binaries, known-bad images).

Why: the same patterns apply to container commands, image history, environment and log
lines; keeping them in one place keeps the rules consistent.

Where they come from: the triage catalogue (``shared/docs/triage-rules.md`` §2, §3, §4),
which cites Falco's lists (``falcosecurity/rules``: ``miner_binaries``, ``miner_ports``,
``miner_domains``, ``sensitive_mount``, ``excessively_capable_container``) and Sigma's
``lnx_auditd_coinminer.yml``; the lists are restated here as data, not copied code.
"""

from __future__ import annotations

import re

#: download tools (with a URL or followed by piping into a shell)
DOWNLOAD_EXEC = re.compile(
    r"(?ix)"
    r"(?:\b(?:curl|wget|tftp|fetch|busybox\s+wget)\b[^|;&\n]*"
    r"(?:\|\s*(?:ba|da|z|k)?sh\b|;\s*(?:ba|da)?sh\s|&&\s*(?:ba|da)?sh\s|\bchmod\s+\+?[0-7]*x"
    r"|-O\s*\S+\s*(?:;|&&)\s*(?:chmod|\./|sh\b|bash\b)))"
    r"|(?:\b(?:curl|wget)\b[^\n]*?\bhttps?://\d{1,3}(?:\.\d{1,3}){3}\b)"
    r"|(?:/dev/tcp/\d{1,3}(?:\.\d{1,3}){3}/\d+)"
    r"|(?:base64\s+(?:-d|--decode)[^\n]*\|\s*(?:ba)?sh\b)"
    r"|(?:\b(?:python[23]?\s+-c|perl\s+-e)\b[^\n]*\b(?:socket|urllib|urlopen|LWP)\b)")

#: a download tool with a URL (weaker than :data:`DOWNLOAD_EXEC`)
DOWNLOAD_URL = re.compile(r"(?i)\b(?:curl|wget|tftp)\b[^\n]*\b(?:https?|ftp|tftp)://[^\s'\"]+")

#: raw IPv4 URL
RAW_IP_URL = re.compile(r"(?i)\b(?:https?|ftp|tftp)://(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?")

#: miner binaries (Falco ``miner_binaries``) and tell-tale arguments (Sigma coinminer)
MINER_NAMES = ("xmrig", "xmr-stak", "minerd", "minergate", "cpuminer", "ccminer", "ethminer",
               "t-rex", "phoenixminer", "nbminer", "lolminer", "srbminer", "kdevtmpfsi",
               "kinsing", "nanominer", "teamredminer", "bminer", "xmr-stak-cpu")
MINER = re.compile(
    r"(?i)(?:stratum2?\+(?:tcp|ssl|tls)://|--donate-level|--cpu-priority|--max-cpu-usage"
    r"|\bxmrig\b|\bxmr-stak\b|\bminerd\b|\bcpuminer\b|\bethminer\b|\bnanopool\b"
    r"|\bpool\.(?:minexmr|supportxmr|hashvault|nanopool)\.|\bminexmr\.com|\bsupportxmr\.com"
    r"|\bcryptonight\b|\brandomx\b|\b4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}\b)")

#: XMRig-style console output (DX-052)
MINER_OUTPUT = re.compile(r"(?i)(?:XMRig/\d|\buse pool\b|\bnew job from\b|"
                          r"\bspeed 10s/60s/15m\b|\baccepted \(\d+/\d+\) diff)")

#: container escape commands (DX-008)
ESCAPE = re.compile(
    r"(?i)(?:\bchroot\s+/(?:host|mnt|hostfs|rootfs)\b|\bnsenter\b[^\n]*(?:-t\s*1\b|--target[= ]1\b)"
    r"|/proc/1/root\b|\bmount\s+/dev/(?:sd|vd|xvd|nvme|dm-)|\brelease_agent\b|\bcore_pattern\b"
    r"|\bdocker\b[^\n]*-H\s*unix://[^\n]*\brun\b[^\n]*--privileged)")

#: build-step red flags in image history (DX-021), besides download/miner patterns
BUILD_RED_FLAGS = re.compile(
    r"(?i)(?:\bchmod\s+(?:[ugoa]*\+s|[0-7]?[4-7][0-7]{3})\b|\.ssh/authorized_keys|/etc/ld\.so\.preload"
    r"|/etc/cron|/var/spool/cron|\bADD\s+https?://|[A-Za-z0-9+/]{200,}={0,2})")

#: attack strings in logs (DX-050), besides download/exec
ATTACK_STRINGS = re.compile(
    r"(?i)(?:\$\{jndi:|\bCONFIG\s+SET\s+dir\b|\bMODULE\s+LOAD\b|\bSLAVEOF\b|\.\./\.\./(?:\.\./)*etc/"
    r"|/etc/passwd\b.*(?:cat|curl|wget)|\bunion\s+select\b|<\?php|\bcmd\.exe\b|\beval\(base64_decode"
    r"|\bnc\s+-[a-z]*e\s|\bbash\s+-i\s*>&\s*/dev/tcp/)")

#: environment variable names that carry secrets (DX-015)
SECRET_NAME = re.compile(
    r"(?i)^(?:AWS_(?:ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)|AZURE_CLIENT_SECRET"
    r"|GOOGLE_APPLICATION_CREDENTIALS|.*(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY"
    r"|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?))$")

#: credential-looking values (any name)
SECRET_VALUE = re.compile(
    r"(?:\bAKIA[0-9A-Z]{16}\b|\bASIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b"
    r"|\bglpat-[A-Za-z0-9_-]{20,}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
    r"|-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@[^\s]+)")

#: secrets written on a build command line (ARG/ENV/RUN with NAME=value)
SECRET_ASSIGN = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)"
    r"[A-Z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s;&|]+)")

#: values that are clearly placeholders (not secrets)
PLACEHOLDER = re.compile(r"(?i)^(?:|changeme|change_me|example|dummy|xxx+|\*+|<[^>]*>|\$\{?\w+\}?"
                         r"|/run/secrets/.*|.*_FILE)$")

#: host paths whose bind mount exposes the host (DX-002; Falco ``sensitive_mount``)
SENSITIVE_HOST_PATHS = ("/etc", "/root", "/home", "/proc", "/sys", "/dev", "/boot",
                        "/var/lib/kubelet", "/etc/kubernetes", "/var/lib/docker",
                        "/var/lib/containerd", "/var/run", "/run", "/usr", "/lib", "/bin",
                        "/sbin", "/var/log")

#: container runtime sockets (DX-003)
RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "podman.sock", "dockershim.sock",
                   "cri-dockerd.sock")

#: capabilities that allow escape or host tampering (DX-005; Falco
#: ``excessively_capable_container``)
CAPS_CRITICAL = {"ALL", "SYS_ADMIN", "SYS_MODULE"}
CAPS_RISKY = {"SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH", "DAC_OVERRIDE", "SYS_BOOT", "SYSLOG",
              "NET_ADMIN", "BPF", "PERFMON", "SYS_TIME", "MKNOD", "SETFCAP", "MAC_ADMIN",
              "MAC_OVERRIDE", "LINUX_IMMUTABLE", "NET_RAW"}

#: raw host devices (DX-007)
RAW_DEVICES = re.compile(r"^/dev/(?:sd[a-z]|nvme|vd[a-z]|xvd[a-z]|hd[a-z]|dm-|mapper/|mem$|kmem$"
                         r"|kmsg$|port$|mmcblk|loop|disk/)")

#: known-bad image repositories from public reports (triage catalogue §3)
BAD_IMAGES = ("pocosow/centos", "gakeaws/nginx", "ohldm/nginx", "dockmylife/memorytest",
              "xoolu/ubuntu", "dockerminer/etcd", "dockerminer/scan_marathon_forever",
              "l0s3r/m3n", "dockersdev/shipyard", "badguys/apache")
#: known-bad repository prefixes
BAD_IMAGE_PREFIXES = ("dockerminer/", "cmd.cat/")

#: malware / tool file names seen in Docker-host campaigns (DX-033, DX-043)
MALWARE_NAMES = {"kdevtmpfsi", "kinsing", "zzz.sh", "spre.sh", "live.sh", "worm.sh",
                 "cleanxmr.sh", "xmr.sh", "version.dat", "log_rot", "nodjs", "xmrig",
                 "xmrig-notls", "xmr-stak", "minerd", "cpuminer"}
TOOL_NAMES = {"ngrok", "gs-netcat", "gsocket", "frpc", "frps", "chisel", "masscan", "zgrab",
              "zgrab2", "pnscan", "nmap", "tor", "docker", "kubectl", "crictl", "socat", "ncat"}

#: web-shell extensions (DX-041)
WEBSHELL_EXT = (".php", ".php3", ".php4", ".php5", ".phtml", ".phar", ".jsp", ".jspx", ".asp",
                ".aspx", ".ashx", ".cgi", ".war", ".pl")
WEB_ROOTS = ("/var/www", "/usr/share/nginx/html", "/usr/local/apache2/htdocs",
             "/usr/local/tomcat/webapps", "/app/public", "/srv/www", "/opt/bitnami",
             "/var/lib/tomcat", "/usr/share/httpd")


def first_match(regex: re.Pattern[str], text: str) -> str | None:
    """The first match of ``regex`` in ``text`` (trimmed to 200 chars), or ``None``."""
    m = regex.search(text)
    if not m:
        return None
    s = m.group(0)
    return s if len(s) <= 200 else s[:199] + "…"
