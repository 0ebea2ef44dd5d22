"""RFC 9457 problem+json errors with stable codes and zh-CN / en details."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"

# code -> (status, en, zh-CN). Domains add theirs with register_messages().
MESSAGES: dict[str, tuple[int, str, str]] = {
    "VALIDATION_FAILED": (422, "The request body or parameters are invalid.", "请求参数不合法。"),
    "MALFORMED_JSON": (400, "The request body is not valid JSON.", "请求体不是合法的 JSON。"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Send the body as application/json.", "请求体必须为 application/json。"),
    "PAYLOAD_TOO_LARGE": (413, "The request body is too large.", "请求体过大。"),
    "NOT_FOUND": (404, "The resource does not exist.", "资源不存在。"),
    "METHOD_NOT_ALLOWED": (405, "The method is not allowed on this resource.", "该资源不支持此方法。"),
    "BAD_REQUEST": (400, "The request is malformed.", "请求格式错误。"),
    # Answered by the HTTP server before the application (yibao/http_server.py, limits in gunicorn_conf.py).
    "URI_TOO_LONG": (414, "The request line is too long.", "请求行过长。"),
    "REQUEST_HEADER_FIELDS_TOO_LARGE": (
        431,
        "Too many request header fields, or one is too large.",
        "请求头字段过多或过大。",
    ),
    "EXPECTATION_FAILED": (417, "The Expect header cannot be met.", "无法满足 Expect 请求头。"),
    "NOT_IMPLEMENTED": (501, "The server does not support this request.", "服务器不支持该请求。"),
    "INTERNAL_ERROR": (500, "An internal error occurred.", "服务内部错误。"),
    "AUTHENTICATION_REQUIRED": (401, "Authentication is required.", "需要身份认证。"),
    "TOKEN_INVALID": (401, "The access token is invalid or expired.", "访问令牌无效或已过期。"),
    "REFRESH_TOKEN_INVALID": (401, "The refresh token is invalid or expired.", "刷新令牌无效或已过期。"),
    "REFRESH_TOKEN_REUSED": (
        401,
        "The refresh token was already used; every session of this login was ended.",
        "刷新令牌已被使用，本次登录的所有会话已失效。",
    ),
    "ADMIN_AUTH_FAILED": (401, "The operator token is missing or wrong.", "经办机构令牌缺失或错误。"),
    "INSTITUTION_AUTH_FAILED": (401, "The institution signature is invalid.", "机构请求签名校验失败。"),
    "INSTITUTION_NOT_DESIGNATED": (
        403,
        "The institution is not designated for this business type or service.",
        "本机构未开通该业务类型或服务的定点资格。",
    ),
    "INSTITUTION_DISABLED": (403, "The institution is not enabled.", "机构未启用。"),
    "REPLAY_STORE_UNAVAILABLE": (
        503,
        "The replay-protection store is unavailable; try again shortly.",
        "防重放存储暂不可用，请稍后重试。",
    ),
    "DATABASE_UNAVAILABLE": (503, "The database is unavailable.", "数据库暂不可用。"),
    "PERSON_EXISTS": (409, "A person with this ID number is already registered.", "该证件号码已登记。"),
    "PERSON_NOT_FOUND": (404, "No such insured person.", "参保人不存在。"),
    "INSTITUTION_NOT_FOUND": (404, "No such institution.", "机构不存在。"),
    "REGION_UNKNOWN": (
        422,
        "The region code is not a known administrative division.",
        "行政区划代码不存在。",
    ),
    "ID_NUMBER_INVALID": (422, "The ID number is not a valid 18-digit resident ID.", "身份证号码不合法。"),
    "PERSON_SUSPENDED": (403, "The insured person is suspended.", "参保人状态已暂停。"),
    "IDENTITY_PROOF_INVALID": (
        401,
        "The identity proof is invalid or expired.",
        "身份核验凭据无效或已过期。",
    ),
    "IDENTITY_MISMATCH": (
        403,
        "The identity proof does not match the registered person.",
        "身份核验结果与登记信息不一致。",
    ),
    "SANDBOX_DISABLED": (404, "The sandbox identity provider is disabled.", "沙箱身份核验未启用。"),
    "NOT_ACTIVATED": (403, "The e-voucher is not activated.", "医保电子凭证未激活。"),
    "NOT_PERMITTED": (403, "You are not permitted to do this.", "无权进行此操作。"),
}


def register_messages(messages: dict[str, tuple[int, str, str]]) -> None:
    """Let a domain package add its error codes and their texts (from its errors.py).

    A code means one thing everywhere: registering it again with another status or text is a bug
    (two domains disagreeing on what a client sees), refused at import time.
    """
    for code, entry in messages.items():
        if code in MESSAGES and MESSAGES[code] != entry:
            raise ValueError(f"error code {code} registered twice with different texts")
    MESSAGES.update(messages)


def register_variant(code: str, where: str, entry: tuple[int, str, str]) -> str:
    """Register the other meaning a contract gives a code in one place, with its own status and texts
    (DESIGN.md: SCOPE_NOT_ALLOWED is 403 at a scan, 422 for a hospital order). Returns its key
    `CODE@where`, to raise (AppError) and document (Blueprint.problems) it with; clients see `CODE`."""
    key = f"{code}@{where}"
    register_messages({key: entry})
    return key


def base_code(key: str) -> str:
    """The code clients see for a key: `SCOPE_NOT_ALLOWED@hospital_order` → `SCOPE_NOT_ALLOWED`."""
    return key.partition("@")[0]


class AppError(Exception):
    """An error with a stable code; the handler renders it as problem+json.

    `code` may be a variant's key (register_variant): its status and texts apply, `code` is the base."""

    def __init__(
        self, code: str, detail: str | None = None, *, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(code)
        self.key = code
        self.code = base_code(code)
        self.status = status or MESSAGES.get(code, (400,))[0]
        self.detail = detail
        self.extra = extra


def preferred_language() -> str:
    """Pick zh-CN or en from Accept-Language (zh-CN when it is preferred, else en)."""
    if not request:
        return "en"
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="en")
    return "zh-CN" if best.startswith("zh") else "en"


# The field map of VALIDATION_FAILED in Chinese: marshmallow's default messages and the shell's own;
# domains add theirs with register_field_messages. A message not listed is passed through in English.
_FIELD_MESSAGES_ZH = {
    "Missing data for required field.": "缺少必填字段。",
    "Field may not be null.": "字段不能为 null。",
    "Unknown field.": "未知字段。",
    "Invalid input type.": "输入类型无效。",
    "Invalid type.": "类型无效。",
    "Invalid value.": "取值无效。",
    "Not a valid string.": "不是有效的字符串。",
    "Not a valid utf-8 string.": "不是有效的 UTF-8 字符串。",
    "Not a valid integer.": "不是有效的整数。",
    "Not a valid number.": "不是有效的数字。",
    "Number too large.": "数值过大。",
    "Not a valid boolean.": "不是有效的布尔值。",
    "Not a valid list.": "不是有效的列表。",
    "Not a valid mapping type.": "不是有效的对象。",
    "Not a valid date.": "不是有效的日期。",
    "Not a valid datetime.": "不是有效的日期时间。",
    "Not a valid URL.": "不是有效的 URL。",
    "String does not match expected pattern.": "格式不正确。",
    "Must not be blank.": "不能为空白。",
    "Not a valid person name.": "不是有效的姓名。",
    "Not a valid 18-digit resident ID number (ID_NUMBER_INVALID).": (
        "不是有效的18位居民身份证号码（ID_NUMBER_INVALID）。"
    ),
    "Unknown administrative region code (REGION_UNKNOWN).": "未知的行政区划代码（REGION_UNKNOWN）。",
    "Only employee insurance has a personal account.": "只有职工医保有个人账户。",
    "online_otc is for online pharmacies only.": "online_otc 仅适用于网上药店。",
    "Give status, services or both.": "请提供 status 或 services（或两者）。",
    "Must not contain NUL characters.": "不能包含 NUL 字符。",
}
_FIELD_PATTERNS_ZH = [
    (re.compile(r"Must be one of: (.*)\.", re.S), "必须是以下之一：{0}。"),
    (re.compile(r"Length must be between (\S+) and (\S+)\."), "长度必须在 {0} 到 {1} 之间。"),
    (re.compile(r"Length must be (\S+)\."), "长度必须为 {0}。"),
    (re.compile(r"Shorter than minimum length (\S+)\."), "长度不能小于 {0}。"),
    (re.compile(r"Longer than maximum length (\S+)\."), "长度不能大于 {0}。"),
    (
        re.compile(r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\."),
        "必须大于等于 {0} 且小于等于 {1}。",
    ),
    (re.compile(r"Must be greater than or equal to (\S+)\."), "必须大于等于 {0}。"),
    (re.compile(r"Must be less than or equal to (\S+)\."), "必须小于等于 {0}。"),
    (re.compile(r"Must be greater than (\S+)\."), "必须大于 {0}。"),
    (re.compile(r"Must be less than (\S+)\."), "必须小于 {0}。"),
]


def register_field_messages(messages: dict[str, str]) -> None:
    """Add a domain's validation messages (English → Chinese) for the zh-CN field map."""
    _FIELD_MESSAGES_ZH.update(messages)


def _zh_field_message(message: str) -> str:
    if message in _FIELD_MESSAGES_ZH:
        return _FIELD_MESSAGES_ZH[message]
    for pattern, template in _FIELD_PATTERNS_ZH:
        m = pattern.fullmatch(message)
        if m:
            return template.format(*m.groups())
    return message


def localize_field_messages(messages: Any, language: str) -> Any:
    """The validation field map with its messages in `language` (zh-CN or en); the structure is kept."""
    if language != "zh-CN":
        return messages
    if isinstance(messages, str):
        return _zh_field_message(messages)
    if isinstance(messages, list):
        return [localize_field_messages(m, language) for m in messages]
    if isinstance(messages, dict):
        return {k: localize_field_messages(v, language) for k, v in messages.items()}
    return messages


def problem(code: str, status: int | None = None, detail: str | None = None, **extra: Any) -> Response:
    """Build an application/problem+json response."""
    entry = MESSAGES.get(code)
    status = status or (entry[0] if entry else 400)
    if detail is None:
        detail = (entry[2] if preferred_language() == "zh-CN" else entry[1]) if entry else code
    code = base_code(code)
    body: dict[str, Any] = {
        "type": f"urn:yibao:problem:{code.lower()}",
        "title": code,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if request:
        body["instance"] = request.path
        rid = getattr(request, "request_id", None)
        if rid:
            body["request_id"] = rid
    if "errors" in extra:
        extra["errors"] = localize_field_messages(extra["errors"], preferred_language())
    body.update(extra)
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIME)
    resp.headers["Content-Language"] = preferred_language()
    return resp


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_REQUIRED",
    403: "NOT_PERMITTED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    417: "EXPECTATION_FAILED",
    422: "VALIDATION_FAILED",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
}


def handle_http_exception(exc: HTTPException) -> Response:
    """Render werkzeug/webargs HTTP errors as problem+json, keeping validation field maps."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    if status == 422 and "messages" in data:
        messages = data["messages"]
        # webargs nests by location ("json", "query"); clients want the field map.
        if (
            isinstance(messages, dict)
            and len(messages) == 1
            and next(iter(messages))
            in {
                "json",
                "query",
                "headers",
                "form",
                "path",
            }
        ):
            messages = next(iter(messages.values()))
        return problem("VALIDATION_FAILED", 422, errors=messages)
    code = _HTTP_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    resp = problem(code, status)
    if status == 405 and getattr(exc, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


def handle_app_error(exc: AppError) -> Response:
    """Render a domain error."""
    return problem(exc.key, exc.status, exc.detail, **exc.extra)


def handle_unexpected(exc: Exception) -> Response:
    """Log the stack trace server-side; the client sees only a code and a request id."""
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    from .redis_store import RedisUnavailable

    if isinstance(exc, RedisUnavailable):
        log.warning("redis unavailable: %s", exc)  # the operator must see why requests fail closed
        return problem("REPLAY_STORE_UNAVAILABLE", 503)
    from sqlalchemy.exc import DataError, OperationalError

    log.exception("unhandled error")
    if isinstance(exc, OperationalError):
        return problem("DATABASE_UNAVAILABLE", 503)
    if isinstance(exc, DataError):  # a value the database cannot store (validation should have caught it)
        return problem("BAD_REQUEST", 400)
    return problem("INTERNAL_ERROR", 500)


def init_app(app: Flask) -> None:
    """Route every error through problem+json."""
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
