"""The user data (cloud-init) of a machine a pilot pool launches: it installs docker
and pilot, writes the agent's one-use token (mode 0600) and runs the agent once, as
a transient systemd unit, powering the machine off after it (or after 10 minutes
with nothing to run). Shared by the ec2 and gcp provisioners."""
import json


def user_data(req, tarball, extra_args=()):
    labels = ",".join(f"{k}={v}" for k, v in sorted((req.get("labels") or {}).items()))
    argv = ["/usr/local/bin/pilot", "agent", "--server=" + req["server_url"],
            "--token-file=/etc/pilot/agent.token", "--name=" + req["agent_name"], "--once",
            "--idle-timeout=10m", "--drain-timeout=5m", "--shutdown-command=poweroff"]
    if labels:
        argv.append("--labels=" + labels)
    argv += list(extra_args)
    unit = ["systemd-run", "--unit=pilot-agent", "--property=After=docker.service",
            "--property=KillMode=mixed", "--property=TimeoutStopSec=15min"] + argv
    # JSON is YAML: every value below is quoted exactly once.
    doc = {
        "write_files": [{"path": "/etc/pilot/agent.token", "owner": "root:root", "permissions": "0600",
                         "content": req.get("agent_token") or ""}],
        "package_update": True,
        "packages": ["docker.io", "curl"],
        "runcmd": [
            ["systemctl", "enable", "--now", "docker"],
            ["sh", "-c", 'curl -fsSL "$1" | tar -xz -C /usr/local --strip-components=1', "sh", tarball],
            unit,
        ],
        # If anything above fails, the machine must not stay up.
        "power_state": {"mode": "poweroff", "delay": "+30", "condition": "! systemctl is-active -q pilot-agent"},
    }
    return "#cloud-config\n" + json.dumps(doc, indent=2) + "\n"
