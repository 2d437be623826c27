#!/usr/bin/env python3
"""A fake Kubernetes API server for Sluice's informer tests (Python 3 stdlib only).

It serves what kube-apiserver serves for the kinds Sluice reads, in the same JSON format:
List objects (items without kind/apiVersion, metadata.resourceVersion and metadata.continue),
watch streams of {"type": ..., "object": ...} lines in a chunked response, an APIGroup discovery
document for discovery.k8s.io, and Status objects for errors. HTTPS with a CA it generates with the
openssl CLI; bearer-token auth with the token read from a file on every request (so rotation can be
tested), or a client certificate signed by the same CA.

A control API (plain HTTP on a second loopback port, JSON bodies) lets tests change objects and
inject faults:
  POST /apply    <object>                      create or update (bumps resourceVersion, events)
  POST /delete   {"apiVersion","kind","namespace","name"}
  POST /fault    {"page_size": n, "watch_status_410": n | {plural: n}, "watch_error_410": (same),
                  "hang": ["list"|"watch"|"get"|"write"|"discovery"|"all"],
                  "stall_watches": bool,
                  "delay_ms": n, "watch_max_seconds": n, "list_status": {"plural": code},
                  "write_conflict": n | {plural: n},   (PUT/POST answered 409)
                  "close_after_reply": n}   (drop the next n kept-alive connections after replying)
The API port also takes PUT (optimistic concurrency on metadata.resourceVersion: 409 when stale;
/status changes only the status, the main resource everything else) and POST (create; 409 when
the object exists). "hang": ["write"] hangs both, ["get"] a GET of one object. An
events.k8s.io/v1 Event is validated on create as kube-apiserver 1.20 does (422 Invalid).
  POST /drop     drop every open watch mid-stream (no terminating chunk)
  POST /bookmark send a BOOKMARK at the current resourceVersion to every bookmark-enabled watch
  POST /malformed {"plural": p, "line": text}  send a raw line to the open watches of p
  POST /compact  expire every resourceVersion before the current one (re-watch from it: 410)
  POST /slice-versions {"versions": ["v1beta1"]}
  GET  /objects  every object the fake holds;  GET /requests  the API requests seen
  POST /requests/clear;  GET /watchers  open watches by plural
Start: fake_apiserver.py --dir DIR [--slice-versions v1,v1beta1]. It writes DIR/ready.json
({"port", "control_port", "ca", "client_cert", "client_key", "token_file"}) when listening.
"""

import argparse
import base64
import copy
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {
    # kind: (group, plural, namespaced, served versions)
    "Ingress": ("networking.k8s.io", "ingresses", True),
    "IngressClass": ("networking.k8s.io", "ingressclasses", False),
    "Service": ("", "services", True),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices", True),
    "Secret": ("", "secrets", True),
    "ConfigMap": ("", "configmaps", True),
    "Lease": ("coordination.k8s.io", "leases", True),
    "Event": ("events.k8s.io", "events", True),
}
PLURALS = {v[1]: k for k, v in KINDS.items()}


def group_of(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


class State:
    def __init__(self, slice_versions):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {}  # plural -> {(ns, name): obj}
        self.events = []  # dicts: rv, plural, type, obj | line, live
        self.compacted = 0
        self.faults = {}
        self.requests = []
        self.drop_gen = 0
        self.watchers = {}  # plural -> count
        self.slice_versions = list(slice_versions)
        self.continues = {}  # token -> (rv, remaining items)
        self.next_token = 1

    def served_version(self, group, version):
        if group == "discovery.k8s.io":
            return version in self.slice_versions
        return version == {"": "v1", "networking.k8s.io": "v1",
                           "coordination.k8s.io": "v1", "events.k8s.io": "v1"}.get(group)


STATE = None
TOKEN_FILE = None


def take_fault(name, plural):
    """Consumes one count of a fault given as a number (any watch) or {plural: number}."""
    value = STATE.faults.get(name)
    if isinstance(value, dict):
        if value.get(plural, 0) > 0:
            value[plural] -= 1
            return True
        return False
    if value:
        STATE.faults[name] = value - 1
        return True
    return False


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def matches(obj, ns, selector):
    meta = obj.get("metadata", {})
    if ns is not None and meta.get("namespace", "default") != ns:
        return False
    for term in filter(None, (selector or "").split(",")):
        key, _, want = term.partition("=")
        want = want.lstrip("=")
        if key == "metadata.name":
            have = meta.get("name")
        elif key == "metadata.namespace":
            have = meta.get("namespace")
        elif key == "type":
            have = obj.get("type", "Opaque")
        else:
            return False
        if have != want:
            return False
    return True


def with_version(obj, api_version):
    out = copy.deepcopy(obj)
    if isinstance(out, dict) and "apiVersion" in out:
        out["apiVersion"] = api_version
    return out


def send_json_reply(handler, code, body, keep_alive=False):
    """One JSON response. The connection stays open for the next request if `keep_alive` and
    the client did not ask to close (kube-apiserver keeps HTTP/1.1 connections alive)."""
    data = json.dumps(body).encode()
    close = not keep_alive or handler.headers.get("Connection", "").lower() == "close"
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close" if close else "keep-alive")
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()
    if not close:
        with STATE.cond:
            # An idle connection the server drops right after answering, as a server or proxy
            # with a short idle timeout does: the client's next request on it fails.
            close = take_fault("close_after_reply", "any")
    handler.close_connection = close


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, code, body):
        send_json_reply(self, code, body, keep_alive=True)

    def fault(self, name, default=None):
        with STATE.cond:
            return STATE.faults.get(name, default)

    def hang_if(self, kind):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            hang = self.fault("hang", [])
            if kind not in hang and "all" not in hang:
                return False
            time.sleep(0.05)
        return True

    def authorized(self):
        try:
            with open(TOKEN_FILE) as f:
                token = f.read().strip()
        except OSError:
            token = None
        header = self.headers.get("Authorization", "")
        if token and header == "Bearer " + token:
            return True
        try:
            if self.connection.getpeercert():
                return True
        except (AttributeError, ValueError):
            pass
        return False

    def parse(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = [p for p in url.path.split("/") if p]
        return url.path, parts, query

    def do_GET(self):
        path, parts, query = self.parse()
        with STATE.cond:
            STATE.requests.append({"method": "GET", "path": path, "query": query,
                                   "auth": self.headers.get("Authorization", "")})
        if not self.authorized():
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        delay = self.fault("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000.0)
        if parts == ["apis", "discovery.k8s.io"]:
            if self.hang_if("discovery"):
                return
            with STATE.cond:
                versions = list(STATE.slice_versions)
            if not versions:
                return self.send_json(404, status_obj(404, "NotFound", "the server could not "
                                                      "find the requested resource"))
            return self.send_json(200, {
                "kind": "APIGroup", "apiVersion": "v1", "name": "discovery.k8s.io",
                "versions": [{"groupVersion": "discovery.k8s.io/" + v, "version": v}
                             for v in versions],
                "preferredVersion": {"groupVersion": "discovery.k8s.io/" + versions[0],
                                     "version": versions[0]}})
        route = self.route(parts)
        if route is None:
            return self.send_json(404, status_obj(404, "NotFound", "not found: " + path))
        group, version, ns, plural, name = route
        api_version = (group + "/" + version) if group else version
        if name is not None:
            if self.hang_if("get"):
                return
            with STATE.cond:
                obj = STATE.objects.get(plural, {}).get((ns or "", name))
            if obj is None:
                return self.send_json(404, status_obj(404, "NotFound", name + " not found"))
            return self.send_json(200, with_version(obj, api_version))
        if query.get("watch") in ("1", "true"):
            return self.watch(api_version, ns, plural, query)
        return self.list(api_version, ns, plural, query)

    def route(self, parts):
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or rest[0] not in PLURALS:
            return None
        plural = rest[0]
        kind = PLURALS[plural]
        if KINDS[kind][0] != group or not STATE.served_version(group, version):
            return None
        name = rest[1] if len(rest) > 1 else None
        return group, version, ns, plural, name

    def list(self, api_version, ns, plural, query):
        if self.hang_if("list"):
            return
        forced = self.fault("list_status", {}).get(plural)
        if forced:
            return self.send_json(forced, status_obj(forced, "Forced", "forced failure"))
        kind = PLURALS[plural]
        with STATE.cond:
            token = query.get("continue")
            if token:
                entry = STATE.continues.pop(token, None)
                if entry is None:
                    return self.send_json(410, status_obj(410, "Expired",
                                                          "the continue token has expired"))
                rv, items = entry
            else:
                rv = STATE.rv
                items = [copy.deepcopy(o) for _, o in sorted(STATE.objects.get(plural, {}).items())
                         if matches(o, ns, query.get("fieldSelector"))]
            limit = int(query.get("limit") or 0)
            page_size = STATE.faults.get("page_size")
            if page_size:
                limit = min(limit, page_size) if limit else page_size
            cont = ""
            if limit and len(items) > limit:
                cont = "c%d" % STATE.next_token
                STATE.next_token += 1
                STATE.continues[cont] = (rv, items[limit:])
                items = items[:limit]
        for item in items:  # as kube-apiserver: list items carry no kind/apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version,
                             "metadata": meta, "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def event(self, typ, obj):
        self.chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")

    def watch(self, api_version, ns, plural, query):
        if self.hang_if("watch"):
            return
        kind = PLURALS[plural]
        selector = query.get("fieldSelector")
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = int(query.get("timeoutSeconds") or 1800)
        cap = self.fault("watch_max_seconds")
        if cap:
            timeout = min(timeout, cap)
        try:
            since = int(query.get("resourceVersion") or 0)
        except ValueError:
            return self.send_json(400, status_obj(400, "BadRequest", "bad resourceVersion"))
        with STATE.cond:
            if take_fault("watch_status_410", plural):
                gone = "status"
            elif take_fault("watch_error_410", plural):
                gone = "event"
            elif since and since < STATE.compacted:
                gone = "event"
            else:
                gone = None
            if gone == "status":
                pass
            replay = [] if gone else [e for e in STATE.events
                                      if not e["live"] and e["rv"] > since and e["plural"] == plural]
            cursor = len(STATE.events)
            gen = STATE.drop_gen
        if gone == "status":
            return self.send_json(410, status_obj(410, "Gone", "too old resource version"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        if gone == "event":
            self.event("ERROR", status_obj(410, "Expired", "too old resource version: %d (%d)"
                                           % (since, STATE.compacted)))
            self.wfile.write(b"0\r\n\r\n")
            return
        deadline = time.monotonic() + timeout
        with STATE.cond:
            STATE.watchers[plural] = STATE.watchers.get(plural, 0) + 1
        try:
            pending = replay
            while True:
                for e in pending:
                    self.send_event(e, api_version, kind, ns, selector, bookmarks)
                pending = []
                with STATE.cond:
                    STATE.cond.wait(0.1)
                    if STATE.drop_gen != gen:
                        return  # mid-stream: no terminating chunk
                    if time.monotonic() >= deadline:
                        break
                    if STATE.faults.get("stall_watches"):
                        continue
                    pending = [e for e in STATE.events[cursor:] if e["plural"] == plural]
                    cursor = len(STATE.events)
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            with STATE.cond:
                STATE.watchers[plural] -= 1

    def send_event(self, e, api_version, kind, ns, selector, bookmarks):
        if e["type"] == "RAW":
            self.chunk(e["line"].encode() + b"\n")
        elif e["type"] == "BOOKMARK":
            if bookmarks:
                self.event("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                        "metadata": {"resourceVersion": str(e["rv"])}})
        elif isinstance(e["obj"], dict) and matches(e["obj"], ns, selector):
            self.event(e["type"], with_version(e["obj"], api_version))
        elif not isinstance(e["obj"], dict):
            self.event(e["type"], e["obj"])

    def read_write(self, method):
        """The common part of PUT and POST: log, auth, faults, body. Returns (path, route, obj)
        or None after answering."""
        path, parts, query = self.parse()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with STATE.cond:
            STATE.requests.append({"method": method, "path": path, "query": query,
                                   "auth": self.headers.get("Authorization", "")})
        if not self.authorized():
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        if self.hang_if("write"):
            return None
        subresource = None
        if method == "PUT" and len(parts) >= 2 and parts[-1] == "status":
            subresource, parts = "status", parts[:-1]
        route = self.route(parts)
        if route is None or (route[4] is None) != (method == "POST"):
            return self.send_json(404, status_obj(404, "NotFound", "not found: " + path))
        with STATE.cond:
            forced = take_fault("write_conflict", route[3])
        if forced:
            return self.send_json(409, status_obj(409, "Conflict", "forced conflict"))
        try:
            obj = json.loads(body)
        except ValueError:
            return self.send_json(400, status_obj(400, "BadRequest", "bad JSON"))
        group, version, ns, plural, name = route
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if (not isinstance(meta, dict) or obj.get("kind") != PLURALS[plural]
                or meta.get("namespace", ns) != ns or (name is not None and meta.get("name") != name)):
            return self.send_json(400, status_obj(400, "BadRequest",
                                                  "kind, namespace or name do not match the URL"))
        if ns is not None:
            meta["namespace"] = ns
        return path, route, subresource, obj

    def do_PUT(self):
        got = self.read_write("PUT")
        if got is None:
            return
        path, (group, version, ns, plural, name), subresource, obj = got
        with STATE.cond:
            stored = STATE.objects.get(plural, {}).get((ns or "", name))
            if stored is None:
                return self.send_json(404, status_obj(404, "NotFound", name + " not found"))
            want = obj["metadata"].get("resourceVersion")
            if want and want != stored["metadata"]["resourceVersion"]:
                return self.send_json(409, status_obj(
                    409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": the object has "
                    "been modified; please apply your changes to the latest version and try again"
                    % (plural, name)))
            # As kube-apiserver for kinds with a status subresource: /status changes only the
            # status, the main resource everything but the status.
            if subresource == "status":
                new = copy.deepcopy(stored)
                new["status"] = obj.get("status", {})
            else:
                new = obj
                if "status" in stored:
                    new["status"] = copy.deepcopy(stored["status"])
            new["metadata"]["uid"] = stored["metadata"].get("uid")
            code, result = apply_object(new)
        self.send_json(code, result)

    def do_POST(self):
        got = self.read_write("POST")
        if got is None:
            return
        path, (group, version, ns, plural, name), subresource, obj = got
        name = obj["metadata"].get("name")
        if plural == "events":
            errors = event_errors(obj)
            if errors:
                return self.send_json(422, status_obj(422, "Invalid", "Event.events.k8s.io \"%s\" "
                                                      "is invalid: %s" % (name, "; ".join(errors))))
        with STATE.cond:
            if (ns or "", name) in STATE.objects.get(plural, {}):
                return self.send_json(409, status_obj(409, "AlreadyExists",
                                                      "%s \"%s\" already exists" % (plural, name)))
            code, result = apply_object(obj)
        self.send_json(201 if code == 200 else code, result)


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def qualified_name_errors(value):
    """validation.IsQualifiedName: an optional DNS-subdomain prefix and '/', then a name of at
    most 63 characters."""
    prefix, _, name = value.rpartition("/")
    errors = []
    if "/" in value and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        errors.append("prefix part must be a DNS subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        errors.append("name part must be a qualified name of at most 63 characters")
    return errors


def event_errors(obj):
    """ValidateEventCreate of kube-apiserver 1.20 for events.k8s.io/v1 (the JSON field names)."""
    errors = []
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    if not name or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        errors.append("metadata.name: must be a DNS subdomain")
    if not MICRO_TIME.match(str(obj.get("eventTime", ""))):
        errors.append("eventTime: Required value")
    if obj.get("type") not in ("Normal", "Warning"):
        errors.append("type: has invalid value")
    for field in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount",
                  "deprecatedSource"):
        if obj.get(field):
            errors.append(field + ": needs to be unset")
    regarding = obj.get("regarding") or {}
    if not regarding.get("namespace") and meta.get("namespace") != "kube-system":
        errors.append("regarding.namespace: does not match event.namespace")
    controller = obj.get("reportingController", "")
    if not controller:
        errors.append("reportingController: Required value")
    errors += ["reportingController: " + e for e in qualified_name_errors(controller)]
    for field in ("reportingInstance", "action", "reason"):
        value = obj.get(field, "")
        if not value:
            errors.append(field + ": Required value")
        elif len(value) > 128:
            errors.append(field + ": can have at most 128 characters")
    if len(obj.get("note", "").encode()) > 1024:
        errors.append("note: can have at most 1024 characters")
    return errors


def apply_object(obj):
    if not isinstance(obj, dict) or obj.get("kind") not in KINDS:
        return 400, status_obj(400, "BadRequest", "unknown kind")
    group, plural, namespaced = KINDS[obj["kind"]]
    meta = obj.setdefault("metadata", {})
    if namespaced:
        meta.setdefault("namespace", "default")
    key = (meta.get("namespace", "") if namespaced else "", meta.get("name", ""))
    with STATE.cond:
        STATE.rv += 1
        meta["resourceVersion"] = str(STATE.rv)
        meta.setdefault("uid", "uid-%s-%s-%s" % (plural, key[0], key[1]))
        coll = STATE.objects.setdefault(plural, {})
        typ = "MODIFIED" if key in coll else "ADDED"
        coll[key] = obj
        STATE.events.append({"rv": STATE.rv, "plural": plural, "type": typ,
                             "obj": copy.deepcopy(obj), "live": False})
        STATE.cond.notify_all()
        return 200, obj


def delete_object(spec):
    kind = spec.get("kind")
    if kind not in KINDS:
        return 400, {"error": "unknown kind"}
    group, plural, namespaced = KINDS[kind]
    key = (spec.get("namespace", "default") if namespaced else "", spec.get("name"))
    with STATE.cond:
        obj = STATE.objects.get(plural, {}).pop(key, None)
        if obj is None:
            return 404, {"error": "not found"}
        STATE.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(STATE.rv)
        STATE.events.append({"rv": STATE.rv, "plural": plural, "type": "DELETED",
                             "obj": obj, "live": False})
        STATE.cond.notify_all()
        return 200, {"resourceVersion": str(STATE.rv)}


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        send_json_reply(self, code, body)

    def do_GET(self):
        with STATE.cond:
            if self.path == "/objects":
                out = []
                for plural, coll in sorted(STATE.objects.items()):
                    for _, obj in sorted(coll.items()):
                        out.append(obj)
                return self.reply(200, {"resourceVersion": str(STATE.rv), "items": out})
            if self.path == "/requests":
                return self.reply(200, STATE.requests)
            if self.path == "/watchers":
                return self.reply(200, STATE.watchers)
        self.reply(404, {"error": "no such control endpoint"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.reply(400, {"error": "bad JSON"})
        if self.path == "/apply":
            return self.reply(*apply_object(body))
        if self.path == "/delete":
            return self.reply(*delete_object(body))
        with STATE.cond:
            if self.path == "/fault":
                for k, v in body.items():
                    if v is None:
                        STATE.faults.pop(k, None)
                    else:
                        STATE.faults[k] = v
            elif self.path == "/drop":
                STATE.drop_gen += 1
            elif self.path == "/bookmark":
                STATE.events.extend({"rv": STATE.rv, "plural": p, "type": "BOOKMARK",
                                     "live": True} for p in PLURALS)
            elif self.path == "/malformed":
                STATE.events.append({"rv": STATE.rv, "plural": body["plural"], "type": "RAW",
                                     "line": body["line"], "live": True})
            elif self.path == "/compact":
                STATE.compacted = STATE.rv
                STATE.events = [e for e in STATE.events if e["rv"] >= STATE.rv]
            elif self.path == "/slice-versions":
                STATE.slice_versions = list(body["versions"])
            elif self.path == "/requests/clear":
                STATE.requests.clear()
            else:
                return self.reply(404, {"error": "no such control endpoint"})
            STATE.cond.notify_all()
            return self.reply(200, {"resourceVersion": str(STATE.rv)})


def make_certs(d):
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    if os.path.exists(ca):
        return

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=fake-apiserver-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        key, csr, crt = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt"))
        run("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=sluice-" + name)
        extfile = os.path.join(d, name + ".ext")
        with open(extfile, "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", extfile)


def main():
    global STATE, TOKEN_FILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--token-file")
    ap.add_argument("--slice-versions", default="v1,v1beta1")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    make_certs(args.dir)
    TOKEN_FILE = args.token_file or os.path.join(args.dir, "token")
    if not os.path.exists(TOKEN_FILE):
        with open(TOKEN_FILE, "w") as f:
            f.write("token-1\n")
    STATE = State([v for v in args.slice_versions.split(",") if v])

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.crt"), os.path.join(args.dir, "server.key"))
    ctx.load_verify_locations(os.path.join(args.dir, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL

    class TlsServer(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 64

        def get_request(self):
            sock, addr = self.socket.accept()
            # Headers and body go out as separate writes; without this, a kept-alive
            # connection waits out the client's delayed ACK on every response.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The handshake happens in the handler's thread, at its first read: a client that
            # never speaks cannot block the accept loop.
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address):
            pass

    api = TlsServer(("127.0.0.1", 0), ApiHandler)
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.daemon_threads = True
    for srv in (api, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    ready = {"port": api.server_address[1], "control_port": control.server_address[1],
             "ca": os.path.join(args.dir, "ca.crt"),
             "client_cert": os.path.join(args.dir, "client.crt"),
             "client_key": os.path.join(args.dir, "client.key"), "token_file": TOKEN_FILE}
    tmp = os.path.join(args.dir, ".ready.tmp")
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.rename(tmp, os.path.join(args.dir, "ready.json"))
    # Exit with the parent: tests kill us, but never leave a server behind if they crash.
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
