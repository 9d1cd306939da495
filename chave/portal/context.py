from chave.login.services import signed_in


def personal_area(request):
    """Whether the header offers the personal area and sign-out (someone is signed in in this
    browser), and the name it shows.

    A request that never went through the middleware (a static file's error page) has no session:
    nobody is signed in on it."""
    if not hasattr(request, "session"):
        return {"area_signed_in": False}
    who = signed_in(request)
    if who is None:
        return {"area_signed_in": False}
    names = who.full_name.split()
    # The header has little room on a phone: the first and last names say who it is.
    short = " ".join([names[0], names[-1]]) if len(names) > 2 else who.full_name
    return {"area_signed_in": True, "signed_in_name": short}
