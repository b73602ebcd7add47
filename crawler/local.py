"""Local sources: a folder of posts read from disk, the way fetch.py reads a URL.

In: the folder and the stored :class:`CachingInfo`. Out: :class:`Fetched` whose body bundles
every ``.md`` (Jekyll) or ``.txt`` (saved PTT posts) file below the folder (path → text),
or :class:`NotModified` when no file was added, removed or changed since the last read
(the "ETag" is a digest of names, sizes and modification times), so an unchanged archive
costs a directory walk, not a parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from crawler.encoding import decode
from crawler.errors import FetchError, TooLarge
from crawler.types import FOLDER_BUNDLE_TYPE, CachingInfo, Fetched, NotModified


def read_folder(folder: str, caching: CachingInfo, *, max_bytes: int,
                suffix: str = ".md") -> Fetched | NotModified:
    root = Path(folder)
    if not root.is_dir():
        raise FetchError(f"no such folder: {folder}")
    files = sorted(p for p in root.rglob(f"*{suffix}") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                      .encode("utf-8", "surrogateescape"))
    etag = f'"{digest.hexdigest()[:32]}"'
    if caching.etag == etag:
        return NotModified(url=folder, caching=caching)
    bundle: dict[str, str] = {}
    size = 0
    for path in files:
        data = path.read_bytes()
        size += len(data)
        if size > max_bytes:
            raise TooLarge(f"the folder's .md files are over the {max_bytes}-byte cap")
        # File names in these archives hold newlines and NBSPs; keep them readable.
        name = os.fsdecode(path.relative_to(root))
        # Saved PTT posts are often Big5 (with UAO characters): decode each file as a feed.
        bundle[name] = decode(data, None)[0]
    body = json.dumps(bundle, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return Fetched(url=folder, final_url=root.resolve().as_uri() + "/", status=200, body=body,
                   content_type=FOLDER_BUNDLE_TYPE, caching=CachingInfo(etag=etag))
