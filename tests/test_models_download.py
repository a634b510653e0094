"""Downloading published weights, against an HTTP server on 127.0.0.1 (never the internet).

``CNNBENCH_WEIGHTS_BASE_URL`` points every weights URL (download.pytorch.org, the Hugging Face
endpoint) at the local server; the paths stay the published ones, so the server sees exactly what
download.pytorch.org / huggingface.co would.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from cnnbench.errors import WeightsDownloadError, WeightsNotFoundError
from cnnbench.models import check_pretrained_available, create_model, find_weights, hub, pretrained
from conftest import run_cli

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision ResNet18_Weights.DEFAULT
MOBILENET_V1_REPO = "timm/mobilenetv1_100.ra4_e3600_r224_in1k"  # timm's pretrained_cfg hf_hub_id for mobilenet_v1
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class WeightServer:
    """Files served by path; ``truncated`` paths announce 1000 bytes more than they send, then close."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WeightServer]:
    """A weights server on 127.0.0.1, empty torch / Hugging Face caches, and downloads allowed."""
    state = WeightServer()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            state.requests.append((self.command, path))
            data = state.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")  # what the Hub says for a file not in a repo
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) + (1000 if path in state.truncated else 0)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')  # the Hub's headers for a file
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("CNNBENCH_WEIGHTS_BASE_URL", state.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("CNNBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "torch" / "hub" / "checkpoints"


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_download_lands_in_the_torch_hub_cache_and_loads(
    server: WeightServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    torch.manual_seed(0)
    data = _state_bytes(torchvision.models.squeezenet1_1().state_dict())
    prefix = hashlib.sha256(data).hexdigest()[:8]
    # A file we make cannot have the published hash, so the URL names ours: the check is still the real one.
    url = f"https://download.pytorch.org/models/squeezenet1_1-{prefix}.pth"
    monkeypatch.setattr(pretrained, "_torchvision_url", lambda weights: url)
    server.files[f"/models/squeezenet1_1-{prefix}.pth"] = data

    model = create_model("squeezenet1_1", num_classes=10, pretrained=True)
    dest = _checkpoints(tmp_path) / f"squeezenet1_1-{prefix}.pth"
    assert dest.read_bytes() == data and _files_under(_checkpoints(tmp_path)) == [dest.name]
    assert model.cnnbench_meta.pretrained == str(dest)
    report = model.cnnbench_meta.load_report
    assert report.loaded == report.total - 2 and report.missing == ["fc.weight", "fc.bias"]
    assert server.requests == [("GET", f"/models/squeezenet1_1-{prefix}.pth")]
    # not a terminal: one line, naming the URL it fetched and where the file went
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and f"{server.url}/models/squeezenet1_1-{prefix}.pth" in lines[0] and str(dest) in lines[0]
    # the second time it comes from the cache, without a request
    assert find_weights("squeezenet1_1", "true") == dest and len(server.requests) == 1
    # torchvision finds the same file where it would have put it (with its own hash check, no download)
    state = torch.hub.load_state_dict_from_url(url, check_hash=True, progress=False)
    assert torch.equal(state["features.0.weight"], model.state_dict()[f"{model.first_conv}.weight"])


def test_torchvision_url_path_is_the_published_one_and_a_wrong_hash_is_refused(
    server: WeightServer, tmp_path: Path
) -> None:
    import torchvision

    assert torchvision.models.ResNet18_Weights.DEFAULT.url == RESNET18_URL
    server.files["/models/resnet18-f37072fd.pth"] = b"not the published resnet18 weights"
    with pytest.raises(WeightsDownloadError) as err:
        create_model("resnet18", pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert f"downloading {server.url}/models/resnet18-f37072fd.pth failed: wrong checksum" in message
    assert "the file name says f37072fd" in message and "refused" in message
    assert "save it there" in message and "--pretrained none" in message
    assert server.requests == [("GET", "/models/resnet18-f37072fd.pth")]
    assert _files_under(tmp_path / "torch") == []  # neither the file nor a temporary one


def test_interrupted_transfer_leaves_no_half_file(server: WeightServer, tmp_path: Path) -> None:
    server.files["/models/resnet18-f37072fd.pth"] = b"x" * 5000
    server.truncated.add("/models/resnet18-f37072fd.pth")
    with pytest.raises(WeightsDownloadError) as err:
        find_weights("resnet18", True)
    message = str(err.value)
    assert "\n" not in message
    assert "transfer interrupted after 5,000 of 6,000 bytes" in message and "run again to retry" in message
    assert str(_checkpoints(tmp_path)) in message
    assert _files_under(tmp_path / "torch") == []


@pytest.mark.slow
def test_interrupted_transfer_is_one_line_from_the_cli(server: WeightServer, tmp_path: Path) -> None:
    server.files["/models/resnet18-f37072fd.pth"] = b"x" * 5000
    server.truncated.add("/models/resnet18-f37072fd.pth")
    proc = run_cli(
        "train", "--model", "resnet18", "--data", "synthetic", "--epochs", "1", "--pretrained", "true",
        "--out", str(tmp_path / "run"), check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("cnnbench train: error: resnet18: pretrained weights")
    assert "transfer interrupted after 5,000 of 6,000 bytes" in errors[0] and "Traceback" not in proc.stderr
    assert _files_under(tmp_path / "torch") == []


def test_http_error_names_the_status(server: WeightServer) -> None:
    with pytest.raises(WeightsDownloadError, match=r"resnet18-f37072fd\.pth failed: HTTP 404"):
        find_weights("resnet18", True)


@pytest.mark.parametrize("var", ["CNNBENCH_OFFLINE", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v1"])
def test_offline_makes_no_request(
    server: WeightServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, model: str
) -> None:
    monkeypatch.setenv(var, "1")
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(model, pretrained=True)
    message = str(err.value)
    assert f"downloads are off ({var}=1 is set)" in message and "--pretrained none" in message
    if model == "resnet18":
        assert f"expected {_checkpoints(tmp_path) / 'resnet18-f37072fd.pth'}" in message
        assert f"download {server.url}/models/resnet18-f37072fd.pth and save it there" in message
    else:
        repo_dir = tmp_path / "hf" / f"models--{MOBILENET_V1_REPO.replace('/', '--')}"
        looked = f"not in the Hugging Face cache ({repo_dir}/snapshots/*/model.safetensors or pytorch_model.bin)"
        assert looked in message
        assert f"{server.url}/{MOBILENET_V1_REPO}/resolve/main/model.safetensors" in message
    assert server.requests == []


def test_offline_lists_every_missing_file_with_its_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("CNNBENCH_WEIGHTS_BASE_URL", raising=False)  # conftest sets CNNBENCH_OFFLINE=1
    with pytest.raises(WeightsNotFoundError) as err:
        check_pretrained_available("seed-caltech", download=False)
    lines = str(err.value).splitlines()
    assert lines[0] == "missing pretrained weights for 4 model(s):"
    assert any("download https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in line for line in lines)
    assert any(
        "https://huggingface.co/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors" in line
        for line in lines
    )
    assert "--pretrained none" in lines[-1]


def test_check_without_download_makes_no_request(server: WeightServer, tmp_path: Path) -> None:
    # `run --dry-run` checks a study this way: what would be downloaded counts as available
    found = check_pretrained_available("resnet18", download=False)
    assert found == {"resnet18": _checkpoints(tmp_path) / "resnet18-f37072fd.pth"}
    assert server.requests == []


def test_a_study_downloads_before_any_run_and_lists_every_failure(server: WeightServer, tmp_path: Path) -> None:
    from cnnbench.errors import ConfigError
    from cnnbench.study import resolve_spec
    from cnnbench.study.spec import validate_study

    spec = resolve_spec("caltech-transfer", None, {})
    validate_study(spec)  # `run --dry-run`: checks, downloads nothing
    assert server.requests == []
    for name in ("mobilenet_v2-7ebf99e0.pth", "efficientnet_b4_rwightman-23ab8bcd.pth"):
        server.files[f"/models/{name}"] = b"not the published weights"
    with pytest.raises(ConfigError) as err:
        validate_study(spec, fetch_weights=True)  # what run_study does before its first run
    lines = str(err.value).splitlines()
    assert lines[0] == "missing pretrained weights for 3 model(s):"
    assert any(line.startswith("  mobilenet_v2: ") and "wrong checksum" in line for line in lines)
    assert any(line.startswith("  efficientnet_b4: ") and "wrong checksum" in line for line in lines)
    assert any(line.startswith("  inception_resnet_v2: ") and "holds none of" in line for line in lines)
    paths = {p for _, p in server.requests}
    assert {"/models/mobilenet_v2-7ebf99e0.pth", "/models/efficientnet_b4_rwightman-23ab8bcd.pth"} <= paths
    assert "/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors" in paths
    assert not any("vgg19" in p for p in paths)  # trained from scratch in this study: never fetched
    assert _files_under(tmp_path / "torch") == []


def test_hugging_face_download_lands_in_the_hub_cache_and_loads(
    server: WeightServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import timm
    from huggingface_hub import try_to_load_from_cache
    from safetensors.torch import save

    torch.manual_seed(1)
    ref = timm.create_model("mobilenetv1_100").eval()
    data = save(ref.state_dict())
    server.files[f"/{MOBILENET_V1_REPO}/resolve/main/model.safetensors"] = data

    model = create_model("mobilenet_v1", num_classes=5, pretrained=True).eval()
    path = Path(model.cnnbench_meta.pretrained)
    repo_dir = tmp_path / "hf" / f"models--{MOBILENET_V1_REPO.replace('/', '--')}"
    assert path == repo_dir / "snapshots" / COMMIT / "model.safetensors" and path.read_bytes() == data
    # huggingface_hub (and so timm) finds it in its own cache layout
    assert try_to_load_from_cache(MOBILENET_V1_REPO, "model.safetensors", cache_dir=tmp_path / "hf") == str(path)
    assert ("GET", f"/{MOBILENET_V1_REPO}/resolve/main/model.safetensors") in server.requests
    assert model.cnnbench_meta.load_report.unexpected == []
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), ref.forward_features(x), rtol=1e-4, atol=1e-4)
    url = f"{server.url}/{MOBILENET_V1_REPO}/resolve/main/model.safetensors"
    assert capsys.readouterr().err.splitlines() == [f"downloading {url} into {tmp_path / 'hf'}"]
    seen = len(server.requests)
    assert find_weights("mobilenet_v1", True) == path and len(server.requests) == seen  # cached: no request


def test_hugging_face_repo_without_safetensors_falls_back_to_the_pickle(server: WeightServer, tmp_path: Path) -> None:
    server.files["/timm/tiny.test/resolve/main/pytorch_model.bin"] = b"weights"
    path = hub.download_from_hf("timm/tiny.test", tmp_path / "hf")
    assert path.name == "pytorch_model.bin" and path.read_bytes() == b"weights"
    assert [p for _, p in server.requests][0] == "/timm/tiny.test/resolve/main/model.safetensors"  # timm's order


def test_hugging_face_unreachable_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub retries 5 times with back-off
    monkeypatch.delenv("CNNBENCH_OFFLINE")
    monkeypatch.setenv("CNNBENCH_WEIGHTS_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsDownloadError) as err:
        find_weights("inception_resnet_v2", True)
    message = str(err.value)
    assert "\n" not in message and message.startswith("inception_resnet_v2: pretrained weights not in the Hugging")
    assert f"downloading http://127.0.0.1:{port}/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors" in (
        message
    )
    assert "failed: no connection (" in message and "run again to retry" in message
    assert _files_under(tmp_path / "hf" / "models--timm--inception_resnet_v2.tf_in1k" / "snapshots") == []


def test_progress_bar_on_a_terminal(server: WeightServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    data = b"w" * 3000
    name = f"tiny-{hashlib.sha256(data).hexdigest()[:10]}.pth"
    server.files[f"/models/{name}"] = data
    dest = hub.download_to_file(f"{server.url}/models/{name}", tmp_path / name, hub.hash_prefix(name))
    assert dest.read_bytes() == data
    out = term.getvalue()
    assert out.startswith(f"\r{name} 100% |") and out.endswith(" done\n") and out.count("\n") == 1


def test_hash_prefix_and_mirror_follow_torch_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert hub.hash_prefix("alexnet-owt-7be5be79.pth") == "7be5be79"
    assert hub.hash_prefix("mnasnet1.0_top1_73.512-f206786ef8.pth") == "f206786ef8"
    assert hub.hash_prefix("lenet5.pth") is None
    monkeypatch.delenv("CNNBENCH_WEIGHTS_BASE_URL", raising=False)
    assert hub.mirror_url(RESNET18_URL) == RESNET18_URL
    monkeypatch.setenv("CNNBENCH_WEIGHTS_BASE_URL", "https://mirror.example/pytorch/")
    assert hub.mirror_url(RESNET18_URL) == "https://mirror.example/pytorch/models/resnet18-f37072fd.pth"
    assert hub.hf_endpoint() == "https://mirror.example/pytorch"
