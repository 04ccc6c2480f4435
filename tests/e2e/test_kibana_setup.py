"""`llmq kibana setup` against a stand-in Kibana (a small HTTP server in this process that
records what it receives and answers like Kibana's status and saved-objects import APIs): the
upload, space, auth, the dashboard's address per space, and the errors a user gets. No Kibana
runs on this machine."""

from __future__ import annotations

import base64
import json
from email import policy
from email.parser import BytesParser

import pytest

import kibana_panels as kp
from elastic_node import run_llmq
from llmq_e2e import free_port
from stand_in_http import Recorded, StandInServer

NDJSON_BYTES = kp.NDJSON.read_bytes()
N_OBJECTS = len(kp.load_objects())


class StandInKibana(StandInServer):
    content_type = "application/json; charset=utf-8"

    """Answers like Kibana's GET /api/status and POST [/s/<space>]/api/saved_objects/_import,
    recording every request. `import_refuses`: an object id the import reports as failed.

    Like Kibana 8+, an id is global for the `multiple-isolated` types (lens, dashboard): the
    first space to import one keeps its id; another space gets a copy under a new id, reported
    as `destinationId`, and keeps that copy on every later import (Kibana finds it by origin)."""

    def __init__(self, version: str = "9.5.0", status_code: int = 200,
                 spaces: tuple[str, ...] = ("default", "ops"), import_refuses: str | None = None):
        self.version, self.status_code = version, status_code
        self.spaces, self.import_refuses = spaces, import_refuses
        self.uploads: list[dict] = []  # the parsed multipart file part of each import
        self.owner: dict[tuple[str, str], str] = {}  # (type, id) -> the space that holds the id
        self.copies: dict[tuple[str, str, str], str] = {}  # (space, type, origin id) -> its id
        super().__init__()

    def imports(self) -> list[Recorded]:
        return [r for r in self.requests if r.route.endswith("/api/saved_objects/_import")]

    # -- answers --

    def answer(self, req: Recorded) -> tuple[int, dict]:
        parts = req.route.split("/")
        space = "default"
        route = req.route
        if len(parts) > 3 and parts[1] == "s":
            space, route = parts[2], "/" + "/".join(parts[3:])
        if space not in self.spaces:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
        if req.method == "GET" and route == "/api/status":
            if self.status_code != 200:
                return self.status_code, {"statusCode": self.status_code, "error": "Unauthorized",
                                          "message": "[security_exception]: unable to authenticate"}
            return 200, {"name": "stand-in", "version": {"number": self.version,
                                                         "build_flavor": "traditional"},
                         "status": {"overall": {"level": "available"}}}
        if req.method == "POST" and route == "/api/saved_objects/_import":
            if "kbn-xsrf" not in req.headers:
                return 400, {"statusCode": 400, "error": "Bad Request",
                             "message": "Request must contain a kbn-xsrf header."}
            upload = parse_upload(req)
            if upload is None:
                return 400, {"statusCode": 400, "error": "Bad Request",
                             "message": "[request body.file]: expected value of type [Stream]"}
            self.uploads.append(upload)
            objs = [json.loads(line) for line in upload["content"].decode("utf-8").splitlines()
                    if line.strip()]
            ok = [o for o in objs if o["id"] != self.import_refuses]
            bad = [o for o in objs if o["id"] == self.import_refuses]
            answer = {"success": not bad, "successCount": len(ok),
                      "successResults": [self.place(space, o) for o in ok]}
            if bad:
                answer["errors"] = [{"type": o["type"], "id": o["id"],
                                     "meta": {"title": o["attributes"].get("title")},
                                     "error": {"type": "missing_references",
                                               "references": [{"type": "index-pattern",
                                                               "id": "nowhere"}]}} for o in bad]
            return 200, answer
        return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}

    def place(self, space: str, o: dict) -> dict:
        result = {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"].get("title")}}
        if o["type"] not in ("lens", "dashboard"):
            return result
        owner = self.owner.setdefault((o["type"], o["id"]), space)
        if owner != space:
            key = (space, o["type"], o["id"])
            result["destinationId"] = self.copies.setdefault(key, f"copy-{len(self.copies)}-{o['id']}")
        return result


def parse_upload(req: Recorded) -> dict | None:
    """The `file` part of a multipart/form-data body: {"content", "filename", "content_type"}."""
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return None
    msg = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + req.body)
    if not msg.is_multipart() or msg.defects:
        return None
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return {"content": part.get_payload(decode=True), "filename": part.get_filename(),
                    "content_type": part.get_content_type()}
    return None


@pytest.fixture
def kibana():
    made: list[StandInKibana] = []

    def make(**kw) -> StandInKibana:
        made.append(StandInKibana(**kw))
        return made[-1]

    yield make
    for k in made:
        k.close()


def kibana_setup(url: str, *extra: str):
    return run_llmq("kibana", "setup", "--kibana-url", url, *extra, timeout=60)


def assert_one_error_line(r, *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmq: "), r.stderr
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def test_setup_imports_into_a_space_with_an_api_key(kibana):
    k = kibana(version="9.5.0")
    r = kibana_setup(k.url, "--space", "ops", "--kibana-api-key", "S0meKey==")
    assert r.returncode == 0, r.stderr
    assert str(N_OBJECTS) in r.stdout.split() and "ops" in r.stdout, r.stdout
    (imp,) = k.imports()
    assert imp.method == "POST" and imp.route == "/s/ops/api/saved_objects/_import", imp.path
    assert imp.params.get("overwrite") == ["true"], imp.path
    assert imp.headers.get("kbn-xsrf"), imp.headers
    for req in k.requests:  # the status check too
        assert req.headers.get("authorization") == "ApiKey S0meKey==", (req.path, req.headers)
    (upload,) = k.uploads
    assert upload["content"] == NDJSON_BYTES, "the uploaded file is not kibana/llmq-saved-objects.ndjson"
    assert upload["filename"].endswith(".ndjson"), upload["filename"]  # Kibana checks the extension


def test_setup_default_space_with_basic_auth(kibana):
    k = kibana(version="8.8.0")  # the oldest Kibana the objects' migration versions allow
    r = kibana_setup(k.url + "/", "--kibana-user", "elastic", "--kibana-password", "pa:ss")
    assert r.returncode == 0, r.stderr
    assert str(N_OBJECTS) in r.stdout.split() and "default" in r.stdout, r.stdout
    (imp,) = k.imports()
    assert imp.route == "/api/saved_objects/_import", imp.path
    assert imp.params.get("overwrite") == ["true"], imp.path
    basic = "Basic " + base64.b64encode(b"elastic:pa:ss").decode()
    assert imp.headers.get("authorization") == basic, imp.headers
    assert k.uploads[0]["content"] == NDJSON_BYTES


def test_setup_prints_where_the_dashboard_is_in_each_space(kibana):
    """The fixed id holds in the first space only: the line names the dashboard's address in the
    space imported into, the id Kibana gave its copy there included."""
    k = kibana()
    first = f"dashboard: {k.url}/app/dashboards#/view/llmq-inference-overview"
    r = kibana_setup(k.url + "/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == first, r.stdout
    r = kibana_setup(k.url, "--space", "ops")
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-1]
    assert line.startswith(f"dashboard: {k.url}/s/ops/app/dashboards#/view/") and \
        not line.endswith("/llmq-inference-overview"), line
    (copy,) = [c for key, c in k.copies.items() if key == ("ops", "dashboard", "llmq-inference-overview")]
    assert line.endswith("/" + copy), (line, copy)
    again = kibana_setup(k.url, "--space", "ops")
    assert again.stdout.splitlines()[-1] == line, "the same copy is updated, not another made"
    # Credentials in the URL are not part of the address printed.
    port = k.url.rsplit(":", 1)[1]
    r = kibana_setup(f"http://elastic:s3cret@127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout and r.stdout.splitlines()[-1] == first, r.stdout


@pytest.mark.parametrize("version", ["7.17.0", "8.7.1", "10.0.0"])
def test_setup_refuses_an_unsupported_kibana(kibana, version):
    k = kibana(version=version)
    r = kibana_setup(k.url)
    assert_one_error_line(r, version, "not supported")
    assert not k.imports(), "nothing may be imported into an unsupported Kibana"


def test_setup_reports_the_objects_kibana_refused(kibana):
    k = kibana(import_refuses="llmq-lens-latency")
    r = kibana_setup(k.url)
    assert_one_error_line(r, "llmq-lens-latency")
    assert len(k.imports()) == 1


def test_setup_wrong_credentials(kibana):
    k = kibana(status_code=401)
    r = kibana_setup(k.url, "--kibana-user", "elastic", "--kibana-password", "wrong")
    line = assert_one_error_line(r)
    assert "credentials" in line and "401" in line, line
    assert "wrong" not in line, "the password must not be printed"
    assert not k.imports()


def test_setup_unreachable_kibana():
    port = free_port()  # nothing listens there
    r = kibana_setup(f"http://127.0.0.1:{port}")
    assert_one_error_line(r, "cannot reach Kibana", str(port))


def test_setup_space_that_does_not_exist(kibana):
    k = kibana()
    r = kibana_setup(k.url, "--space", "nope")
    line = assert_one_error_line(r, "nope")
    assert "space" in line, line
