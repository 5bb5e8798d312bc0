"""GET /$discovery/rest: the minimal discovery document the legacy python SDK's upload needs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.api.context import base_url


async def discovery(request: Request) -> JSONResponse:
    version = request.query_params.get("version", "v1beta")
    root = base_url(request) + "/"
    return JSONResponse({
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": f"generativelanguage:{version}",
        "name": "generativelanguage",
        "version": version,
        "rootUrl": root,
        "baseUrl": root,
        "servicePath": "",
        "batchPath": "batch",
        "protocol": "rest",
        "parameters": {
            "key": {"type": "string", "location": "query"},
            "alt": {"type": "string", "location": "query", "default": "json"},
        },
        "schemas": {
            "CreateFileRequest": {"id": "CreateFileRequest", "type": "object",
                                  "properties": {"file": {"$ref": "File"}}},
            "CreateFileResponse": {"id": "CreateFileResponse", "type": "object",
                                   "properties": {"file": {"$ref": "File"}}},
            "File": {"id": "File", "type": "object", "properties": {
                name: {"type": "string"} for name in ("name", "displayName", "mimeType", "sizeBytes", "createTime",
                                                      "updateTime", "expirationTime", "sha256Hash", "uri", "state")}},
        },
        "resources": {
            "media": {
                "methods": {
                    "upload": {
                        "id": "generativelanguage.media.upload",
                        "path": f"{version}/files",
                        "flatPath": f"{version}/files",
                        "httpMethod": "POST",
                        "parameters": {},
                        "parameterOrder": [],
                        "request": {"$ref": "CreateFileRequest"},
                        "response": {"$ref": "CreateFileResponse"},
                        "supportsMediaUpload": True,
                        "mediaUpload": {
                            "accept": ["*/*"],
                            "maxSize": "2147483648",
                            "protocols": {
                                "simple": {"multipart": True, "path": f"/upload/{version}/files"},
                                "resumable": {"multipart": True, "path": f"/resumable/upload/{version}/files"},
                            },
                        },
                    }
                }
            }
        },
    })
