"""E-mail delivery through Airflow's SMTP connection, against a small SMTP server on loopback:
each configured street receives its own files and nothing of another street's."""

import email
import io
import json
import socketserver
import threading
from email.header import decode_header, make_header

import pandas as pd
import pytest
import yaml

from verification.reports.delivery import load_delivery, send_run_reports


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: greeting, EHLO, MAIL, RCPT, DATA, QUIT."""

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._reply("220 loopback test SMTP")
        envelope = {"rcpt": []}
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb == "EHLO":
                self._reply("250-loopback")
                self._reply("250 8BITMIME")
            elif verb in ("HELO", "RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "MAIL":
                envelope = {"from": line.decode().strip(), "rcpt": []}
                self._reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(line.decode().split("<")[1].split(">")[0])
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                data = io.BytesIO()
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data.write(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.received.append({**envelope, "data": data.getvalue()})
                self._reply("250 queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")


@pytest.fixture
def smtp_server(monkeypatch):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_HEDUI_TEST_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": server.server_address[1],
        "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 10}}))
    yield server
    server.shutdown()
    server.server_close()


def _config(tmp_path, streets: dict) -> object:
    path = tmp_path / "delivery.yaml"
    path.write_text(yaml.safe_dump({"smtp_conn_id": "hedui_test_smtp",
                                    "sender": "hedui@example.org", "streets": streets}), "utf-8")
    return load_delivery(path)


def test_each_street_gets_only_its_own_files(report_run, smtp_server, tmp_path):
    config = _config(tmp_path, {"210112001": ["a@example.org"],
                                "210112002": ["b@example.org", "c@example.org"]})
    sent = send_run_reports(report_run.settings, report_run.run_id, config)
    assert [s["street"] for s in sent] == ["210112001", "210112002"]
    assert [m["rcpt"] for m in smtp_server.received] == [["a@example.org"],
                                                          ["b@example.org", "c@example.org"]]
    for message, street in zip(smtp_server.received, ["五三街道", "浑河站西街道"], strict=True):
        parsed = email.message_from_bytes(message["data"])
        assert street in str(make_header(decode_header(parsed["Subject"])))
        files = {p.get_filename(): p.get_payload(decode=True) for p in parsed.walk()
                 if p.get_filename()}
        assert set(files) == {"flags.xlsx", "flags.csv", "summary.html"}
        attached = pd.read_csv(io.BytesIO(files["flags.csv"]), encoding="utf-8-sig", dtype=str)
        expected = pd.read_csv(next(report_run.out.glob(f"*-{street}")) / "flags.csv",
                               encoding="utf-8-sig", dtype=str)
        assert attached["家庭编号"].tolist() == expected["家庭编号"].tolist()
        assert set(attached["街道"]) == {street}


def test_delivery_configuration_is_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown street codes 999999999"):
        _config(tmp_path, {"999999999": ["x@example.org"]})
    with pytest.raises(ValueError, match="not e-mail addresses"):
        _config(tmp_path, {"210112001": ["not-an-address"]})
    shipped = load_delivery()
    assert shipped.smtp_conn_id and shipped.streets
