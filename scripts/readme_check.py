#!/usr/bin/env python3
"""Runs every command of the README's "Try it" section against a running `make run` stack, as
written, and checks what each answers. The only changes: the stack's port (make test runs it
on its own ports) and `<jobId>`, which becomes the id of each job the commands started.

Usage: readme_check.py README.md LAMBDA_PORT
"""

import json
import re
import subprocess
import sys
import time

SECTION = "## Try it"
README_PORT = "9000"
SETTLE_SECONDS = 120
# Velt's four arrays of an export, then ours (CONTRACT 1.4).
EXPORT_ARRAYS = ["comments", "reactions", "recordings", "notifications", "profile", "access",
                 "contacts", "views"]


def commands(readme):
    """The shell commands of the section's ```sh blocks, continuation lines joined."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def run(command):
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"FAILED (exit {done.returncode}): {command}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def answer(command, output):
    try:
        return json.loads(output)
    except json.JSONDecodeError:
        sys.exit(f"FAILED: not JSON: {command}\n{output}")


def check(condition, command, output):
    if not condition:
        sys.exit(f"FAILED: unexpected answer: {command}\n{output}")


def main():
    readme_path, port = sys.argv[1], sys.argv[2]
    with open(readme_path, encoding="utf-8") as f:
        found = commands(f.read())
    check(len(found) >= 5, "the README's Try it section", "\n".join(found))
    jobs, status_command = [], None
    for command in found:
        command = command.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
        command = command.replace(f"--invoke-port {README_PORT}", f"--invoke-port {port}")
        if "<jobId>" in command:
            status_command = command
            continue
        output = run(command)
        print(f"ok: {command[:100]}...", flush=True)
        if command.startswith("cargo lambda invoke") and " worker " in command:
            check("batchItemFailures" in answer(command, output), command, output)
        elif command.startswith("cargo lambda invoke"):
            body = json.loads(answer(command, output)["body"])
            check(body.get("statusCode") == 202, command, output)
            jobs.append(body["data"]["jobId"])
        elif "dryRun" in command:
            data = answer(command, output)
            check(data.get("statusCode") == 200 and data["data"]["dryRun"], command, output)
        elif "/v2/users/data/get" in command:
            result = answer(command, output).get("result", {})
            data = result.get("data", {})
            check(
                result.get("status") == "success"
                and all(isinstance(data.get(k), list) for k in EXPORT_ARRAYS)
                and data["comments"]
                and "nextPageToken" in result,
                command,
                output,
            )
        else:
            data = answer(command, output)
            check(data.get("statusCode") == 202, command, output)
            jobs.append(data["data"]["jobId"])
    check(status_command is not None, "the status command", "none found")
    for job in jobs:
        command = status_command.replace("<jobId>", job)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            output = run(command)
            data = answer(command, output)["result"]["data"]
            if data["isDeleteCompleted"]:
                print(f"ok: job {job} completed: {json.dumps(data['items'])}")
                break
            if time.monotonic() > deadline:
                sys.exit(f"FAILED: job {job} did not complete in {SETTLE_SECONDS}s: {output}")
            time.sleep(0.5)
    check_webhook(jobs)
    print(f"all {len(found)} README commands work; {len(jobs)} jobs completed")


WEBHOOK_LOG = ".local/logs/webhook-receiver.log"


def check_webhook(jobs):
    """Each completed job was announced to make run's receiver exactly once, signed."""
    deadline = time.monotonic() + 60
    while True:
        with open(WEBHOOK_LOG, encoding="utf-8") as f:
            log = f.read()
        announced = {job: log.count(f"event {job}.completed: ") for job in jobs}
        if all(n >= 1 for n in announced.values()):
            break
        if time.monotonic() > deadline:
            sys.exit(f"FAILED: jobs not announced to the webhook: {announced}\n{log}")
        time.sleep(0.5)
    check(all(n == 1 for n in announced.values()), "one event per job", json.dumps(announced))
    check("signature" in log and "REFUSED" not in log and "duplicate" not in log, "the webhook", log)
    print(f"ok: every job announced once to the webhook receiver, signed")


if __name__ == "__main__":
    main()
