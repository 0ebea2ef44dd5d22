"""RFC 9457 problem+json errors with stable codes and zh-CN / en details."""

from __future__ import annotations

import logging
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
    """Let a domain package add its error codes and their texts."""
    MESSAGES.update(messages)


class AppError(Exception):
    """An error with a stable code; the handler renders it as problem+json."""

    def __init__(
        self, code: str, detail: str | None = None, *, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status or MESSAGES.get(code, (400,))[0]
        self.detail = detail
        self.extra = extra


def preferred_language() -> str:
    """Pick zh-CN or en from Accept-Language (zh-CN when it is preferred, else en)."""
    if not request:
        return "en"
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="en")
    return "zh-CN" if best.startswith("zh") else "en"


def problem(code: str, status: int | None = None, detail: str | None = None, **extra: Any) -> Response:
    """Build an application/problem+json response."""
    entry = MESSAGES.get(code)
    status = status or (entry[0] if entry else 400)
    if detail is None:
        detail = (entry[2] if preferred_language() == "zh-CN" else entry[1]) if entry else code
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
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
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
    return problem(exc.code, exc.status, exc.detail, **exc.extra)


def handle_unexpected(exc: Exception) -> Response:
    """Log the stack trace server-side; the client sees only a code and a request id."""
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    from .redis_store import RedisUnavailable

    if isinstance(exc, RedisUnavailable):
        log.warning("redis unavailable: %s", exc)  # the operator must see why requests fail closed
        return problem("REPLAY_STORE_UNAVAILABLE", 503)
    from sqlalchemy.exc import OperationalError

    log.exception("unhandled error")
    if isinstance(exc, OperationalError):
        return problem("DATABASE_UNAVAILABLE", 503)
    return problem("INTERNAL_ERROR", 500)


def init_app(app: Flask) -> None:
    """Route every error through problem+json."""
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
