from django.urls import path

from chave.oidc import converters  # noqa: F401 - registers <client_id:…>

from . import desk_views, rp_views, views

app_name = "counter"
urlpatterns = [
    path("", views.home, name="home"),
    path("login", views.sign_in, name="login"),
    path("login/card", views.sign_in_card, name="login_card"),
    path("logout", views.sign_out, name="logout"),
    path("find/", views.find, name="find"),
    path("citizen/<int:pk>/", views.citizen, name="citizen"),
    path("citizen/<int:pk>/unlock", views.unlock, name="unlock"),
    path("citizen/<int:pk>/new-pin", views.new_pin, name="new_pin"),
    path("citizen/<int:pk>/cancel", views.cancel, name="cancel"),
    path("citizen/<int:pk>/signing", views.activate_signing, name="activate_signing"),
    path("citizen/<int:pk>/renew", views.renew, name="renew"),
    path("citizen/<int:pk>/new-document", views.new_document, name="new_document"),
    path("citizen/<int:pk>/letters/<uuid:letter_id>/cancel", views.cancel_letter, name="cancel_letter"),
    path("citizen/<int:pk>/letters/<uuid:letter_id>/handed-over", views.hand_over, name="hand_over"),
    path("citizen/<int:pk>/letters/<uuid:letter_id>/print-again", views.print_again, name="print_again"),
    path("citizen/<int:pk>/contact", views.change_contact, name="change_contact"),
    path("register", desk_views.register, name="register"),
    path("registrations/<int:pk>/", desk_views.registration, name="registration"),
    path("registrations/<int:pk>/step", desk_views.registration_step, name="registration_step"),
    path("desk/screen", desk_views.pair_screen, name="pair_screen"),
    path("screen/", desk_views.screen, name="screen"),
    path("screen/pair/<str:token>", desk_views.screen_pair, name="screen_pair"),
    path("report/", views.report, name="report"),
    path("actions/<int:action_id>/reverse", views.reverse_action, name="reverse"),
    path("letters/", views.letter_list, name="letters"),
    path("letters/batch", views.make_batch, name="make_batch"),
    path("letters/batch/<int:batch_id>.pdf", views.batch_download, name="batch_download"),
    path("letters/batch/<int:batch_id>/posted", views.batch_posted, name="batch_posted"),
    path("rp/", rp_views.rp_list, name="rp_list"),
    path("rp/request", rp_views.rp_request, name="rp_request"),
    path("rp/<client_id:client_id>/", rp_views.rp_detail, name="rp_detail"),
    path("rp/<client_id:client_id>/decide", rp_views.rp_decide, name="rp_decide"),
    path("rp/<client_id:client_id>/rotate-secret", rp_views.rp_rotate_secret, name="rp_rotate_secret"),
    path("rp/<client_id:client_id>/keys", rp_views.rp_set_keys, name="rp_set_keys"),
    path("rp/<client_id:client_id>/settings", rp_views.rp_set_settings, name="rp_set_settings"),
    path("rp/<client_id:client_id>/saml-metadata", rp_views.rp_saml_metadata, name="rp_saml_metadata"),
]
