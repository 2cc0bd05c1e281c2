"""A deliberately small Kubernetes REST client (``requests`` + client certificates).

Objects are plain dicts (the JSON the API server speaks), so tests read like the
manifests they create.  Resource paths come from API discovery, so any group/kind
the server serves works, including ``resource.k8s.io/v1``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests


class ApiError(RuntimeError):
    """A non-2xx answer; `.status` is the HTTP code, `.message` the server's message."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.status = status
        self.body = body
        self.message = body.get("message", "") if isinstance(body, dict) else str(body)
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class Api:
    def __init__(self, server: str, ca: str, cert: str, key: str, timeout: float = 30):
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.verify = str(ca)
        self.session.cert = (str(cert), str(key))
        # Ignore REQUESTS_CA_BUNDLE & co. (requests lets them override `verify`) and proxies.
        self.session.trust_env = False
        self.timeout = timeout
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ raw HTTP
    def request(self, method: str, path: str, body: Any = None, *, params=None,
                content_type: str = "application/json", raw: bool = False):
        data = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        r = self.session.request(method, self.server + path, data=data, params=params,
                                 headers={"Content-Type": content_type,
                                          "Accept": "application/json"},
                                 timeout=self.timeout)
        if "Warning" in r.headers:
            self.warnings.append(r.headers["Warning"])
        if raw:
            return r
        try:
            payload = r.json()
        except ValueError:
            payload = r.text
        if r.status_code >= 300:
            raise ApiError(method, path, r.status_code, payload)
        return payload

    # ------------------------------------------------------------------ discovery
    def _discover(self, api_version: str) -> None:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        for res in self.request("GET", base)["resources"]:
            if "/" not in res["name"]:
                self._resources[(api_version, res["kind"])] = (res["name"], res["namespaced"])

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) for a kind."""
        if (api_version, kind) not in self._resources:
            self._discover(api_version)
        try:
            return self._resources[(api_version, kind)]
        except KeyError:
            raise ApiError("GET", api_version, 404,
                           f"kind {kind} not served in {api_version}") from None

    def path(self, api_version: str, kind: str, name: str | None = None,
             namespace: str | None = None, subresource: str | None = None) -> str:
        plural, namespaced = self.resource(api_version, kind)
        p = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            p += f"/namespaces/{namespace or 'default'}"
        p += f"/{plural}"
        if name:
            p += f"/{name}"
        if subresource:
            p += f"/{subresource}"
        return p

    @staticmethod
    def _ns(obj: dict, namespace: str | None) -> str | None:
        return namespace or obj.get("metadata", {}).get("namespace")

    # ------------------------------------------------------------------ verbs
    def create(self, obj: dict, namespace: str | None = None, **params) -> dict:
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"],
                                              namespace=self._ns(obj, namespace)),
                            obj, params=params or None)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.request("GET", self.path(api_version, kind, name, namespace))

    def get_or_none(self, api_version: str, kind: str, name: str,
                    namespace: str | None = None) -> dict | None:
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             **params) -> list[dict]:
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            p = f"{base}/namespaces/{namespace}/{plural}"
        else:
            p = f"{base}/{plural}"
        return self.request("GET", p, params=params or None)["items"]

    def patch(self, api_version: str, kind: str, name: str, patch: dict,
              namespace: str | None = None, subresource: str | None = None,
              patch_type: str = "merge") -> dict:
        ct = {"merge": "application/merge-patch+json",
              "strategic": "application/strategic-merge-patch+json",
              "json": "application/json-patch+json"}[patch_type]
        return self.request("PATCH", self.path(api_version, kind, name, namespace, subresource),
                            patch, content_type=ct)

    def apply(self, obj: dict, field_manager: str = "mock-accel-tests",
              namespace: str | None = None, dry_run: bool = False, force: bool = True) -> dict:
        """Server-side apply (optionally `dryRun=All`)."""
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request("PATCH", self.path(obj["apiVersion"], obj["kind"],
                                               obj["metadata"]["name"], self._ns(obj, namespace)),
                            obj, params=params, content_type="application/apply-patch+yaml")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               grace_period: int | None = None, missing_ok: bool = True) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            self.request("DELETE", self.path(api_version, kind, name, namespace), body)
        except ApiError as e:
            if not (missing_ok and e.status == 404):
                raise

    # ------------------------------------------------------------------ waiting
    def wait_for(self, fn: Callable[[], Any], timeout: float = 30, interval: float = 0.2,
                 what: str = "condition") -> Any:
        """Poll `fn` until it returns something truthy; TimeoutError names `what`."""
        deadline = time.monotonic() + timeout
        last_exc = None
        while time.monotonic() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except ApiError as e:
                last_exc = e
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                           + (f" (last error: {last_exc})" if last_exc else ""))

    def wait_get(self, api_version: str, kind: str, name: str, namespace: str | None,
                 pred: Callable[[dict], Any], timeout: float = 30, what: str = "") -> dict:
        """Poll an object until `pred(obj)` is truthy; returns the object."""
        holder = {}

        def check():
            obj = self.get_or_none(api_version, kind, name, namespace)
            holder["obj"] = obj
            return obj if obj is not None and pred(obj) else None

        try:
            return self.wait_for(check, timeout, what=what or f"{kind} {namespace}/{name}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; last seen: {json.dumps(holder.get('obj'))[:2000]}") from None

    def wait_pod_bound(self, namespace: str, name: str, timeout: float = 45) -> dict:
        """The pod once the scheduler has bound it to a node."""
        return self.wait_get("v1", "Pod", name, namespace, lambda p: p["spec"].get("nodeName"),
                             timeout=timeout, what=f"the scheduler to bind pod {namespace}/{name}")

    def wait_pod_unschedulable(self, namespace: str, name: str, timeout: float = 45) -> dict:
        """The pod once the scheduler has reported it Unschedulable."""
        def unschedulable(pod: dict) -> bool:
            return any(c["type"] == "PodScheduled" and c["status"] == "False"
                       and c.get("reason") == "Unschedulable"
                       for c in pod.get("status", {}).get("conditions", []))
        return self.wait_get("v1", "Pod", name, namespace, unschedulable, timeout=timeout,
                             what=f"pod {namespace}/{name} to be reported Unschedulable")
