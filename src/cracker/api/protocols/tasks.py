"""The vendors' task objects (``{"type": "TurnstileTaskProxyless", "websiteURL": ...}``) as our task types.

Each vendor names the same task several ways (proxy and proxyless variants, CapSolver's
``ProxyLess``); the names are matched case-insensitively. Fields a vendor defines that do not change
the answer (``userAgent``, ``softId``, CapMonster's ``recognizingThreshold``) are ignored, as the
vendors ignore fields they do not know; a hint our solver cannot honour is refused.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from cracker.api.protocols.common import validation_failed
from cracker.domain.errors import FieldError, OfferNotFound, ValidationFailed
from cracker.domain.task_types import TASK_TYPES

Task = Mapping[str, Any]
#: (our type, our fields) from a vendor's task object.
Translate = Callable[[Task], tuple[str, dict[str, Any]]]


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None and value != ""}


def _first(task: Task, *names: str) -> Any:
    for name in names:
        if task.get(name) not in (None, ""):
            return task[name]
    return None


def _proxy(task: Task) -> str | None:
    """Anti-Captcha's proxyType/proxyAddress/... or CapSolver's one ``proxy`` string."""
    if isinstance(task.get("proxy"), str) and task["proxy"]:
        raw: str = task["proxy"]
        return raw if "://" in raw else "http://" + raw
    kind, address, port = task.get("proxyType"), task.get("proxyAddress"), task.get("proxyPort")
    if not (kind and address and port):
        return None
    login, password = task.get("proxyLogin"), task.get("proxyPassword")
    auth = f"{login}:{password or ''}@" if login else ""
    return f"{kind}://{auth}{address}:{port}"


def _image(task: Task) -> tuple[str, dict[str, Any]]:
    if task.get("phrase") in (True, 1):
        raise OfferNotFound("ImageToTextTask with phrase (several words) is not served: the OCR reads one word")
    if task.get("math") in (True, 1):
        raise OfferNotFound("ImageToTextTask with math (an expression to compute) is not served")
    numeric = task.get("numeric", 0)
    charset = {1: string.digits, 2: string.ascii_letters}.get(numeric) if isinstance(numeric, int) else None
    if numeric not in (0, 1, 2, 3, None):
        raise OfferNotFound(f"ImageToTextTask numeric={numeric!r} is not served (0, 1, 2 and 3 are)")
    case = _first(task, "case", "Case")
    return "image-to-text", _present(
        image_b64=task.get("body"),
        case_sensitive=True if case in (True, 1) else None,
        # 0 means "no limit" to the vendors.
        min_length=task.get("minLength") or None,
        max_length=task.get("maxLength") or None,
        charset=charset,
        model=_model(task),
    )


def _model(task: Task) -> Any:
    """A model fine-tuned for one site's captcha (cracker ocr-models), named the way CapMonster names
    its per-site recognition modules (``CapMonsterModule``; ``module`` in its docs), or by our own
    field; its general module, ``universal``, is our general model. An unknown name is refused."""
    name = _first(task, "CapMonsterModule", "module", "model")
    return None if name == "universal" else name


def _object(task: Task, name: str) -> Mapping[str, Any]:
    value = task.get(name)
    return value if isinstance(value, dict) else {}


def _turnstile(task: Task) -> tuple[str, dict[str, Any]]:
    metadata = _object(task, "metadata")
    return "turnstile", _present(
        url=task.get("websiteURL"), site_key=task.get("websiteKey"),
        action=_first(task, "pageAction", "action") or metadata.get("action"),
        cdata=_first(task, "data", "cdata") or metadata.get("cdata"),
    )


def _recaptcha(version: str, enterprise: bool) -> Translate:
    def translate(task: Task) -> tuple[str, dict[str, Any]]:
        return f"recaptcha-{version}", _present(
            url=task.get("websiteURL"), site_key=task.get("websiteKey"), action=task.get("pageAction"),
            enterprise=True if enterprise or task.get("isEnterprise") in (True, 1) else None, proxy=_proxy(task),
        )

    return translate


def _hcaptcha(task: Task) -> tuple[str, dict[str, Any]]:
    payload = _object(task, "enterprisePayload")
    return "hcaptcha", _present(
        url=task.get("websiteURL"), site_key=task.get("websiteKey"), rqdata=_first(task, "data", "rqdata")
        or payload.get("rqdata"),
    )


def _altcha(task: Task) -> tuple[str, dict[str, Any]]:
    # 2captcha's AltchaTask: the challenge as JSON text (challengeJSON) or the URL serving it; this
    # server fetches nothing on a client's behalf, so the URL form is refused.
    raw = task.get("challengeJSON")
    if raw is None and task.get("challengeURL"):
        raise OfferNotFound("AltchaTask with challengeURL is not served: send the challenge as challengeJSON")
    try:
        challenge = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ValidationFailed([FieldError("challengeJSON", "json_invalid", "challengeJSON is not JSON")]) from None
    return "altcha", _present(challenge=challenge)


_TYPES: dict[str, Translate] = {}
for _name in ("ImageToTextTask",):
    _TYPES[_name] = _image
for _name in ("TurnstileTask", "TurnstileTaskProxyless", "AntiTurnstileTaskProxyLess", "AntiTurnstileTask"):
    _TYPES[_name] = _turnstile
for _name in ("RecaptchaV2Task", "RecaptchaV2TaskProxyless", "NoCaptchaTask", "NoCaptchaTaskProxyless",
              "ReCaptchaV2Task", "ReCaptchaV2TaskProxyLess"):
    _TYPES[_name] = _recaptcha("v2", enterprise=False)
for _name in ("RecaptchaV2EnterpriseTask", "RecaptchaV2EnterpriseTaskProxyless", "ReCaptchaV2EnterpriseTask",
              "ReCaptchaV2EnterpriseTaskProxyLess"):
    _TYPES[_name] = _recaptcha("v2", enterprise=True)
for _name in ("RecaptchaV3Task", "RecaptchaV3TaskProxyless", "ReCaptchaV3Task", "ReCaptchaV3TaskProxyLess"):
    _TYPES[_name] = _recaptcha("v3", enterprise=False)
for _name in ("RecaptchaV3EnterpriseTask", "RecaptchaV3TaskProxylessEnterprise", "ReCaptchaV3EnterpriseTask",
              "ReCaptchaV3EnterpriseTaskProxyLess"):
    _TYPES[_name] = _recaptcha("v3", enterprise=True)
for _name in ("HCaptchaTask", "HCaptchaTaskProxyless", "HCaptchaTaskProxyLess"):
    _TYPES[_name] = _hcaptcha
for _name in ("AltchaTask", "AltchaTaskProxyless"):
    _TYPES[_name] = _altcha
#: Lower-cased vendor type name -> its translation.
VENDOR_TYPES: dict[str, Translate] = {name.lower(): translate for name, translate in _TYPES.items()}
#: Our field -> the vendor's, to name the right field in validation errors.
_NAMES = {"url": "websiteURL", "site_key": "websiteKey", "image_b64": "body", "action": "pageAction",
          "case_sensitive": "case", "min_length": "minLength", "max_length": "maxLength", "charset": "numeric",
          "challenge": "challengeJSON", "rqdata": "enterprisePayload.rqdata", "model": "CapMonsterModule"}


def our_task(task: Task) -> tuple[str, dict[str, Any]]:
    """(our type, validated params) for a vendor task object; ``offer_not_found`` for a type not served."""
    translate = VENDOR_TYPES.get(task["type"].lower()) if isinstance(task.get("type"), str) else None
    if translate is None:
        raise OfferNotFound(f"Task type {str(task.get('type'))[:64]!r} is not served here (docs/protocols.md lists "
                            "them)")
    task_type, fields = translate(task)
    try:
        model = TASK_TYPES[task_type].model.model_validate(fields)
    except ValidationError as exc:
        raise validation_failed(exc, _NAMES) from None
    return task_type, model.model_dump(mode="json", exclude_unset=True)
