"""A loopback HTTP server answering the calls huggingface_hub makes to push and pull a model repo.

It covers: create_repo, model-card YAML validation, preupload (every file uploaded inline,
"regular" mode, so no LFS or Xet transfer), create_commit (NDJSON with base64 files), repo info, the file tree, and file
downloads (HEAD and GET on /resolve/). It keeps one branch per repo and answers like the Hub's
JSON closely enough for those calls, nothing more; every request is logged with its
Authorization header so that tests can check the token is sent (and never leaks elsewhere).
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj, code: int = 200, headers: dict | None = None) -> None:
            self._send(code, json.dumps(obj).encode(), headers)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _log(self) -> str:
            path = unquote(urlparse(self.path).path)
            state.requests.append((self.command, path, self.headers.get("Authorization")))
            return path

        def do_POST(self) -> None:
            path = self._log()
            body = self._body()
            if path == "/api/validate-yaml":  # the model card's metadata block
                return self._json({"errors": [], "warnings": []})
            if path == "/api/repos/create":
                info = json.loads(body)
                repo = f"{info['organization']}/{info['name']}" if info.get("organization") else info["name"]
                state.repos.setdefault(repo, {})
                state.commits.setdefault(repo, "0" * 40)
                return self._json({"url": f"http://{self.headers['Host']}/{repo}", "name": repo})
            m = re.fullmatch(r"/api/models/(.+?)/preupload/([^/]+)", path)
            if m:
                files = json.loads(body)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files], "commitOid": state.commits.get(m[1])})
            m = re.fullmatch(r"/api/models/(.+?)/commit/([^/]+)", path)
            if m:
                repo = m[1]
                if repo not in state.repos:
                    return self._json({"error": "Repository not found"}, 404)
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        state.repos[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        state.repos[repo].pop(item["value"]["path"], None)
                sha = hashlib.sha1(json.dumps(sorted(state.repos[repo])).encode() + body).hexdigest()
                state.commits[repo] = sha
                host = self.headers["Host"]
                return self._json({"commitUrl": f"http://{host}/{repo}/commit/{sha}", "commitOid": sha,
                                   "pullRequestUrl": None})
            self._json({"error": f"not emulated: POST {path}"}, 404)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self._log()
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
            if m:
                repo = m[1]
                if repo not in state.repos:
                    return self._json({"error": "Repository not found"}, 404,
                                      {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
                files = state.repos[repo]
                return self._json({"id": repo, "modelId": repo, "sha": state.commits[repo], "private": True,
                                   "siblings": [{"rfilename": name, "size": len(data)} for name, data in
                                                sorted(files.items())]})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
            if m:
                files = state.repos.get(m[1], {})
                prefix = (m[3] or "").strip("/")
                entries = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                           for name, data in sorted(files.items()) if name.startswith(prefix)]
                dirs = sorted({"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)})
                entries += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in dirs
                            if d.startswith(prefix)]
                return self._json(entries)
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m and m[1] in state.repos and m[3] in state.repos[m[1]]:
                data = state.repos[m[1]][m[3]]
                etag = hashlib.sha1(data).hexdigest()
                return self._send(200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": state.commits[m[1]]},
                                  "application/octet-stream")
            self._json({"error": f"not emulated or not found: GET {path}"}, 404,
                       {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})

    return Handler


class LoopbackHub:
    """Context manager: a running server on 127.0.0.1; `.url` is the endpoint, `.state` what it holds."""

    def __enter__(self) -> "LoopbackHub":
        self.state = HubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
