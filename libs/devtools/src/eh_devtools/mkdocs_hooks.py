"""MkDocs hooks (`hooks:` in mkdocs.yml): the generated parts of the documentation site.

- A page that holds `<!-- generated: NAME -->` gets that marker replaced by the generated
  Markdown: `configuration`, `metrics` or `routes` (see `eh_devtools.docs_gen`). An unknown name
  stops the build.
- The site also serves files that are not written in `docs/`: each service's OpenAPI document at
  `reference/openapi/<service>.json` (built from the app, no server), and the AsyncAPI document
  and JSON Schemas of `proto-schemas/` at `reference/asyncapi.json` and
  `reference/jsonschema/<type>.json`, so pages link to them like to any other page.
"""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from eh_devtools import docs_gen

# The apps are built only to read their routes, never served; a service refuses to be built
# without an explicit AUTH_MODE (`make docs` runs outside the test suite, which sets the same).
os.environ.setdefault("AUTH_MODE", "none")

_MARKER: Final = re.compile(r"<!--\s*generated:\s*([a-z_-]+)\s*-->")
PROTO_SCHEMAS: Final = Path(__file__).resolve().parents[4] / "proto-schemas"


def _routes() -> str:
    return "\n".join(docs_gen.routes_markdown(n, d) for n, d in docs_gen.openapi_documents().items())


GENERATORS: Final[dict[str, Callable[[], str]]] = {
    "configuration": docs_gen.configuration_markdown,
    "metrics": docs_gen.metrics_markdown,
    "routes": _routes,
}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for name, document in docs_gen.openapi_documents().items():
        content = json.dumps(document, indent=2)
        files.append(File.generated(config, f"reference/openapi/{name}.json", content=content))
    for source in sorted(PROTO_SCHEMAS.rglob("*.json")):
        uri = f"reference/{source.relative_to(PROTO_SCHEMAS).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def generate(match: re.Match[str]) -> str:
        name = match[1]
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown generated section {name!r}")
        try:
            return GENERATORS[name]()
        except docs_gen.DocsGenerationError as error:
            raise PluginError(str(error)) from error

    return _MARKER.sub(generate, markdown)
