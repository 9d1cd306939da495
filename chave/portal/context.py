from chave.login.services import signed_in


def personal_area(request):
    """Whether the header offers the personal area (someone is signed in in this browser).

    A request that never went through the middleware (a static file's error page) has no session:
    nobody is signed in on it."""
    if not hasattr(request, "session"):
        return {"area_signed_in": False}
    return {"area_signed_in": signed_in(request) is not None}
