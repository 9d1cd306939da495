from django.urls import path, re_path

from . import api

app_name = "app_api"
urlpatterns = [
    path("openapi.json", api.openapi, name="openapi"),
    path("config", api.config, name="config"),
    path("pairings", api.pair, name="pair"),
    path("device", api.device_info, name="device"),
    path("device/confirm", api.confirm, name="confirm"),
    path("device/confirm/resend", api.resend, name="resend"),
    path("device/settings", api.settings_, name="settings"),
    path("device/remove", api.unpair, name="unpair"),
    path("inbox", api.inbox, name="inbox"),
    path("inbox/<uuid:item_id>/dismiss", api.dismiss, name="dismiss"),
    path("approvals/<uuid:request_id>", api.approval, name="approval"),
    path("qr", api.qr_scan, name="qr_scan"),
    path("qr/<uuid:request_id>", api.qr_approve, name="qr_approve"),
    path("qr/<uuid:request_id>/decline", api.qr_decline, name="qr_decline"),
    re_path(r"^(?P<rest>.*)$", api.not_found, name="not_found"),  # a JSON 404, not a page
]
