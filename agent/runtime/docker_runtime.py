"""The container runtime adapter: the Docker engine through the Docker SDK for Python.

Every method blocks; the agent calls them from worker threads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig, Mount
from dstack_hybrid.shared.image_reference import uses_latest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.config import default_state_dir
from agent.runtime import labels
from agent.runtime.cloud_volumes import CloudVolumeError, CloudVolumes
from agent.runtime.logstamps import split_timestamp

log = logging.getLogger("dstack.agent.runtime")

ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}


class RefusedError(Exception):
    """The image is not native to this host: it would only run under emulation."""

    def __init__(self, reason: str, image_platform: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.image_platform = image_platform


class StartError(Exception):
    """Pulling, creating or starting the container failed."""


@dataclass(frozen=True)
class TaskContainer:
    task_id: str
    container: Any  # docker.models.containers.Container
    attempt: int = 1


def image_platform(attrs: dict[str, Any]) -> str:
    arch = ARCH_ALIASES.get(attrs.get("Architecture", ""), attrs.get("Architecture", ""))
    return f"{attrs.get('Os', 'linux')}/{arch}"


class DockerRuntime:
    def __init__(
        self,
        native_arch: str,
        docker_host: str | None = None,
        host_id: str = "",
        state_dir: Path | None = None,
        cloud_volumes: CloudVolumes | None = None,
    ) -> None:
        self.native_platform = f"linux/{native_arch}"
        self.host_id = host_id
        # Cloud volumes are mounted under the agent's state dir (<state dir>/volumes/<name>).
        self.cloud_volumes = cloud_volumes or CloudVolumes(state_dir if state_dir is not None else default_state_dir())
        self.client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()

    def data_root(self) -> str | None:
        try:
            return str(self.client.info().get("DockerRootDir") or "") or None
        except docker.errors.DockerException:
            return None

    # ------------------------------------------------------------- containers
    def task_containers(self) -> dict[tuple[str, int], TaskContainer]:
        """This host's task containers by (task id, attempt)."""
        found = {}
        # Only this host's: several agents may share one engine (simulated hosts, tests).
        wanted = [labels.MANAGED, f"{labels.HOST_ID}={self.host_id}"]
        for c in self.client.containers.list(all=True, filters={"label": wanted}):
            task_id = c.labels.get(labels.TASK_ID)
            if task_id:
                attempt = labels.attempt_of(c.labels)
                found[(task_id, attempt)] = TaskContainer(task_id, c, attempt)
        return found

    def find(self, task_id: str, attempt: int = 1) -> TaskContainer | None:
        try:
            c = self.client.containers.get(labels.container_name(task_id, attempt))
        except docker.errors.NotFound:
            return None
        if c.labels.get(labels.TASK_ID) != task_id or labels.attempt_of(c.labels) != attempt:
            return None
        return TaskContainer(task_id, c, attempt)

    # ------------------------------------------------------------------ image
    def prepare_image(self, image: str, always_pull: bool = False, pulling: Callable[[], None] | None = None) -> None:
        """Makes the native variant of `image` present, or raises RefusedError / StartError.

        Like Kubernetes' IfNotPresent: a tagged image already present is used as it is;
        :latest (or always_pull) pulls. Pulls ask for this host's platform only. `pulling` is
        called before the first pull (the task's history says so: a pull can take minutes)."""
        present = self._inspect(image)
        if present is None or always_pull or uses_latest(image):
            if pulling is not None:
                pulling()
            self._pull(image)
            present = self._inspect(image)
            if present is None:
                raise StartError(f"image {image} is not present after pulling it")
        platform = image_platform(present)
        if platform != self.native_platform and present.get("RepoDigests"):
            # Present from a registry, but another arch's variant: try the native one once.
            try:
                self._pull(image)
                present = self._inspect(image) or present
                platform = image_platform(present)
            except (StartError, RefusedError):
                pass
        if platform != self.native_platform:
            raise RefusedError(
                f"refused: image {image} is {platform}, this host is {self.native_platform}; emulated runs are refused",
                platform,
            )

    def _inspect(self, image: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = self.client.api.inspect_image(image)
            return attrs
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise StartError(f"cannot inspect image {image}: {exc.explanation or exc}") from None

    def _pull(self, image: str) -> None:
        repo, tag = docker.utils.parse_repository_tag(image)
        log.info("pulling %s for %s", image, self.native_platform)
        try:
            for event in self.client.api.pull(repo, tag=tag, platform=self.native_platform, stream=True, decode=True):
                if "error" in event:
                    self._pull_failed(image, str(event["error"]))
        except docker.errors.APIError as exc:
            self._pull_failed(image, str(exc.explanation or exc))

    def _pull_failed(self, image: str, message: str) -> None:
        if "no matching manifest" in message or "does not match the specified platform" in message:
            raise RefusedError(
                f"refused: image {image} has no {self.native_platform} variant; emulated runs are refused"
            )
        raise StartError(f"cannot pull image {image}: {message}")

    # ------------------------------------------------------------- lifecycle
    def create_and_start(self, task_id: str, task_name: str, spec: pb.RunSpec, attempt: int = 1) -> TaskContainer:
        kwargs: dict[str, Any] = {
            "name": labels.container_name(task_id, attempt),
            "labels": {
                labels.MANAGED: "true",
                labels.TASK_ID: task_id,
                labels.TASK_NAME: task_name,
                labels.HOST_ID: self.host_id,
                labels.ATTEMPT: str(attempt),
            },
            "environment": dict(spec.env),
            "detach": True,
            # An init process as PID 1 forwards SIGTERM to the shell, so `stop` is graceful.
            "init": True,
            # The whole log stays for re-reading after an agent restart (lines are numbered from the
            # container's first one, so rotation would shift them: no rotation). The `local` driver
            # keeps the bytes exactly: json-file stores each line as a JSON string and turns bytes
            # that are not UTF-8 into U+FFFD, so a task's binary output came back altered.
            "log_config": LogConfig(type="local", config={"max-size": "1024g", "max-file": "1", "compress": "false"}),
            "privileged": spec.privileged,
        }
        if spec.commands:
            # As dstack does: the commands run in order and the first failure ends the task.
            kwargs["entrypoint"] = ["/bin/sh", "-c"]
            kwargs["command"] = [" && ".join(f"{{ {c}\n}}" for c in spec.commands)]
        if spec.cpu_limit:
            kwargs["nano_cpus"] = int(spec.cpu_limit * 1e9)
        if spec.memory_limit_bytes:
            kwargs["mem_limit"] = spec.memory_limit_bytes
        if spec.working_dir:
            kwargs["working_dir"] = spec.working_dir
        if spec.shm_size_bytes:
            kwargs["shm_size"] = spec.shm_size_bytes
        if spec.mounts:
            # Volumes are paths every host of their region/zone has (an NFS mount, say); instance
            # mounts are this host's own paths. A missing source fails the start with the engine's words.
            # Cloud volumes (attached to this instance by the controller) are mounted here first.
            kwargs["mounts"] = [Mount(target=m.target, source=self._mount_source(m), type="bind") for m in spec.mounts]
        try:
            container = self.client.containers.create(spec.image, **kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # created before an agent restart: adopt it
                existing = self.find(task_id, attempt)
                if existing is not None:
                    return existing
            raise StartError(f"cannot create the container: {exc.explanation or exc}") from None
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise StartError(f"cannot start the container: {exc.explanation or exc}") from None
        container.reload()
        return TaskContainer(task_id, container, attempt)

    def _mount_source(self, mount: pb.Mount) -> str:
        if not mount.cloud_volume_id:
            return mount.source
        try:
            return str(self.cloud_volumes.prepare(mount))
        except CloudVolumeError as exc:
            raise StartError(str(exc)) from None

    def log_stream(self, tc: TaskContainer, stream: int, follow: bool = True) -> Any:
        """A closable stream of raw frames of one output stream (stdout or stderr), from the start;
        with `follow`, until the container exits."""
        return tc.container.logs(
            stdout=stream == pb.LOG_STREAM_STDOUT,
            stderr=stream == pb.LOG_STREAM_STDERR,
            stream=True,
            follow=follow,
            timestamps=True,
        )

    @staticmethod
    def frames(raw: Any) -> Iterator[tuple[int, bytes]]:
        for frame in raw:
            yield split_timestamp(frame)

    def wait(self, tc: TaskContainer) -> int:
        result = tc.container.wait()
        return int(result.get("StatusCode", -1))

    def stop(self, task_id: str, grace_s: int, abort: bool, attempt: int = 1) -> None:
        tc = self.find(task_id, attempt)
        if tc is None:
            return
        try:
            if abort:
                tc.container.kill()
            else:
                tc.container.stop(timeout=grace_s)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running any more
                raise

    def remove(self, task_id: str, attempt: int = 1) -> bool:
        """Removes the attempt's container (stopping it first when it runs); True when it was running."""
        tc = self.find(task_id, attempt)
        if tc is None:
            return False
        running = tc.container.status in ("running", "restarting", "paused", "created")
        with contextlib.suppress(docker.errors.NotFound):
            tc.container.remove(force=True)
        return running
