"""The one exception tree of the project.

* CrawlerError: the root; anything else escaping a stage is a bug.
    * ConfigError: feeds.yaml is wrong; carries every problem found, each with file:line:field.
    * SourceError: something went wrong for one source; carries ``kind`` for status and metrics.
        * FetchError (kind "fetch"): connection refused, DNS, TLS, too many redirects, ...
            * FetchTimeout (kind "timeout"): the total deadline passed.
            * TooLarge (kind "too_large"): the body went past the byte cap.
            * HTTPStatusError (kind "http_status"): a 4xx or 5xx answer.
            * BlockedURL (kind "blocked_url"): a private or loopback address, not allowed.
        * ParseError (kind "parse"): the body is not a feed we can read.
            * NotAFeed (kind "not_a_feed"): empty, HTML, or some other XML.
    * StorageError: the database refused; the source's data is left as it was.
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Root of every error this program raises on purpose."""


class ConfigError(CrawlerError):
    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class SourceError(CrawlerError):
    kind = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

    def describe(self) -> str:
        """The message as stored and shown: the kind, then what happened."""
        return f"{self.kind}: {self}"


class FetchError(SourceError):
    kind = "fetch"


class FetchTimeout(FetchError):
    kind = "timeout"


class TooLarge(FetchError):
    kind = "too_large"


class HTTPStatusError(FetchError):
    kind = "http_status"

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after  #: seconds the server asked us to wait (429, 503)


class BlockedURL(FetchError):
    kind = "blocked_url"


class ParseError(SourceError):
    kind = "parse"

    def __init__(self, message: str, *, status: int | None = None,
                 body_hash: str | None = None) -> None:
        super().__init__(message, status=status)
        self.body_hash = body_hash  #: sha256 of the body that failed, when there was one


class NotAFeed(ParseError):
    kind = "not_a_feed"


class StorageError(CrawlerError):
    kind = "storage"
