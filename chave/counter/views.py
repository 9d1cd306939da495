"""The counter desk, supervision and mail room pages: parse → call a service → render or redirect.

Every page but the sign-in is behind :func:`staff_only`, which checks the staff session, ends it
after ``staff_idle_seconds`` without a request, and refuses (403) what the member's role may not
do (:mod:`.roles`). No page shows a PIN, a code or a TOTP secret.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chave import clock, policy
from chave.audit import services as audit
from chave.card import services as cards
from chave.card.verification import CardRefused
from chave.identity.models import Citizen, DocType, KeyStatus
from chave.login.services import client_ip

from . import letters, services
from .forms import (
    ContactChangeForm,
    FindForm,
    NewDocumentForm,
    NewPinForm,
    PresentedForm,
    ReasonForm,
    RenewalForm,
    StaffSignInForm,
)
from .models import CounterAction, CounterRegistration, Letter, LetterStatus, PrintBatch, Staff
from .roles import can

SESSION_STAFF = "counter.staff"
SESSION_SEEN = "counter.seen"
SESSION_CARD_ASKED = "counter.card_asked"
# Where each role starts: the first page its capabilities open.
START_PAGES = [("citizen.view", "counter:find"), ("letters.print", "counter:letters"), ("rp.view", "counter:rp_list"),
               ("report.view", "counter:report")]


def _posted(request):
    return request.POST if request.method == "POST" else None


def _end_staff_session(request) -> None:
    auth.logout(request)


def current_staff(request) -> Staff | None:
    """The signed-in member of staff, or None (no session, idle too long, account gone)."""
    staff_id, seen = request.session.get(SESSION_STAFF), request.session.get(SESSION_SEEN)
    if not staff_id or not request.user.is_authenticated:
        return None
    staff = Staff.objects.select_related("user").filter(pk=staff_id, user=request.user, user__is_active=True).first()
    if staff is None or seen is None:
        return None
    now = clock.now().timestamp()
    if now - float(seen) > policy.get("staff_idle_seconds"):
        return None
    request.session[SESSION_SEEN] = now
    return staff


def staff_only(capability: str):
    def decorate(view):
        @functools.wraps(view)
        @never_cache
        def guarded(request, *args, **kwargs):
            staff = current_staff(request)
            if staff is None:
                if request.session.get(SESSION_STAFF):
                    _end_staff_session(request)
                    messages.info(request, _("Your staff session ended after a time without activity. Sign in again."))
                return redirect(f"{_url('counter:login')}?next={request.path}")
            if not can(staff.role, capability):
                audit.record("counter.refused", outcome="forbidden", channel=services.CHANNEL, ip=client_ip(request),
                             staff=staff.username, page=request.path[:200])
                return render(request, "counter/forbidden.html", {"staff": staff}, status=403)
            request.staff = staff
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def _url(name: str, *args) -> str:
    from django.urls import reverse

    return reverse(name, args=args)


# --- Sign-in ---------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request):
    form = StaffSignInForm(_posted(request))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            d = form.cleaned_data
            decision = services.check_staff_sign_in(d["username"], d["password"], d["code"], ip=client_ip(request))
            if decision.ok:
                return _start_staff_session(request, decision.staff)
            if decision.reason == "throttled":
                status = 429
                form.add_error(None, _("Too many attempts. Wait a few minutes and try again."))
            else:
                form.add_error(None, _("The username, password or code is not correct."))
    return render(request, "counter/sign_in.html", {"form": form}, status=status)


def _start_staff_session(request, staff: Staff):
    """Sign ``staff`` in (a new session: no fixation) and go where they were going."""
    services.sync_admin_access(staff)
    auth.login(request, staff.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_STAFF] = staff.pk
    request.session[SESSION_SEEN] = clock.now().timestamp()
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = _url("counter:home")
    return redirect(target)


@never_cache
@require_http_methods(["GET"])
def sign_in_card(request):
    """Sign-in with the member's own Citizen Card (:mod:`chave.card`'s agent and checks).

    The first visit asks for the card (a challenge of purpose "staff": the holder is not signed
    in as a citizen); the card's return comes back here, where a card read since that request,
    within ``staff_card_seconds``, signs in the staff account holding its NIC. The card then
    leaves the session, so it opens nothing else."""
    asked = request.session.get(SESSION_CARD_ASKED)
    card = cards.verified_card(request, max_age=policy.get("staff_card_seconds"))
    refusal, status = "", 200
    if asked and card and dt.datetime.fromisoformat(card.verified_at).timestamp() >= float(asked):
        request.session.pop(SESSION_CARD_ASKED, None)
        cards.forget_card(request)
        decision = services.check_staff_card(card, ip=client_ip(request))
        if decision.ok:
            return _start_staff_session(request, decision.staff)
        if decision.reason == "throttled":
            refusal, status = _("Too many attempts. Wait a few minutes and try again."), 429
        else:
            refusal, status = _("This Citizen Card does not belong to a staff account."), 403
    request.session[SESSION_CARD_ASKED] = clock.now().timestamp()
    try:
        agent = cards.issue_challenge(request, next_url=request.get_full_path(), purpose="staff")
    except CardRefused:
        agent, refusal, status = None, _("Too many attempts. Wait a few minutes and try again."), 429
    response = render(request, "counter/sign_in_card.html",
                      {"agent": agent, "agent_command": "chave card-agent", "refusal": refusal}, status=status)
    response["Referrer-Policy"] = "origin"  # as the citizen's card page: the agent checks the origin
    return response


@require_POST
def sign_out(request):
    _end_staff_session(request)
    return redirect("counter:login")


# --- Desk ------------------------------------------------------------------------------------


@never_cache
@require_safe
def home(request):
    staff = current_staff(request)
    if staff is None:
        return redirect("counter:login")
    for capability, page in START_PAGES:
        if can(staff.role, capability):
            return redirect(page)
    return render(request, "counter/forbidden.html", {"staff": staff}, status=403)


@staff_only("citizen.view")
@require_http_methods(["GET", "POST"])
def find(request):
    """The search is posted, so that a NIC, a phone number or an e-mail address never sits in a URL
    (the browser's history, an access log, a Referer); a query string is not read."""
    form = FindForm(_posted(request))
    found, searched = [], False
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        searched = bool(d["q"] or d["doc_type"])
        found = services.find_citizens(d["q"], doc_type=d["doc_type"], doc_country=d["doc_country"],
                                       doc_number=d["doc_number"])
        audit.record("counter.find", outcome="found" if found else "none", channel=services.CHANNEL,
                     ip=client_ip(request), staff=request.staff.username, counter=request.staff.counter)
    limit = policy.get("counter_name_search_max")
    return render(request, "counter/find.html", {"form": form, "found": found, "searched": searched,
                                                 "more": len(found) >= limit, "limit": limit,
                                                 "staff": request.staff}, status=400 if form.errors else 200)


def _open_turn(staff, key):
    """The turn this member of staff has open on their citizen screen for ``key``, if any."""
    from .models import CitizenTurn, TurnStatus

    return CitizenTurn.objects.filter(staff=staff, key=key, status=TurnStatus.OPEN, expires_at__gt=clock.now()).first()


def _presented_initial(citizen: Citizen) -> dict:
    return {"presented_type": citizen.doc_type, "presented_country": citizen.doc_country}


def _summary(request, citizen: Citizen) -> dict:
    """What the citizen's page shows at the top: identity, key, contacts, letters, recent actions,
    and the tasks the member of staff may start from it."""
    from chave.audit import labels
    from chave.portal.services import history

    key = citizen.key
    now = clock.now()
    status = key.effective_status(now) if key else ""
    may_act = can(request.staff.role, "citizen.act")
    return {
        "staff": request.staff,
        "citizen": citizen,
        "key": key,
        "key_status": KeyStatus(status).label if key else "",
        "key_status_value": status,
        "contacts": list(key.contacts.all()) if key else [],
        "history": [{"at": e.at, "event": labels.event_label(e.event),
                     "outcome": labels.outcome_label(e.outcome) if labels.shows_outcome(e.event) else "",
                     "channel": labels.channel_label(e.channel)} for e in history(citizen)[:10]],
        "letters": list(citizen.letters.all()[:10]),
        "actions": list(citizen.counter_actions.select_related("staff", "reversed_by")[:5]),
        "may_act": may_act,
        "signing": _signing_state(citizen),
        "tasks": [t for t in TASKS.values() if may_act and key is not None and t.applies(citizen, key, now)],
        "LetterStatus": LetterStatus,
        "turn": _open_turn(request.staff, key) if key else None,
        "registration": CounterRegistration.objects.filter(key=key, completed_at__isnull=True).first() if key else None,
    }


def _signing_state(citizen: Citizen):
    from chave.signing.services import active_credential

    return active_credential(citizen)


@staff_only("citizen.view")
@require_safe
def citizen(request, pk: int):
    found = get_object_or_404(Citizen, pk=pk)
    audit.record("counter.view", outcome="ok", citizen=found, channel=services.CHANNEL, ip=client_ip(request),
                 staff=request.staff.username, counter=request.staff.counter)
    return render(request, "counter/citizen.html", _summary(request, found))


# --- One page per action ---------------------------------------------------------------------


def _live_key(citizen: Citizen):
    key = citizen.key
    if key is None:
        raise ValidationError(_("This citizen has no key."), code="no_key")
    return key


@dataclass(frozen=True)
class Task:
    """One action on a citizen, on a page of its own: the document presented and the reason (asked
    once), the action's own fields, and — for what cannot be undone — a confirmation page."""

    name: str  # the URL's name, and the element id of its link on the citizen's page
    title: str
    intro: str
    button: str
    done: str
    form_class: type
    prefix: str
    perform: Callable  # (request, citizen, form, subject) -> None; raises ValidationError
    applies: Callable = lambda citizen, key, now: key.is_live  # listed on the citizen's page when true
    dangerous: bool = False
    consequences: tuple = ()  # said again on the confirmation page
    confirm: str = ""  # the confirmation page's question
    confirm_button: str = ""  # and its warning button
    fields: tuple = ()  # the action's own fields, after the document presented


def _task_page(request, citizen: Citizen, task: Task, *, subject=None, form_kwargs: dict | None = None):
    form = task.form_class(_posted(request), prefix=task.prefix, citizen=citizen,
                           initial=_presented_initial(citizen), **(form_kwargs or {}))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            if task.dangerous and request.POST.get("confirmed") != "yes":
                return render(request, "counter/confirm.html", {
                    "staff": request.staff, "citizen": citizen, "task": task, "form": form, "subject": subject,
                    "action": request.path})
            try:
                task.perform(request, citizen, form, subject)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, task.done)
                return redirect("counter:citizen", pk=citizen.pk)
    return render(request, "counter/task.html", {
        "staff": request.staff, "citizen": citizen, "task": task, "form": form, "subject": subject,
        "intro": str(task.intro) % {"days": policy.get("temporary_pin_days")} if "%(" in str(task.intro) else task.intro,
        "own_fields": [form[name] for name in task.fields], "turn": _open_turn(request.staff, citizen.key),
    }, status=status)


def _task_view(task: Task):
    @staff_only("citizen.act")
    @require_http_methods(["GET", "POST"])
    def view(request, pk: int):
        return _task_page(request, get_object_or_404(Citizen, pk=pk), task)

    view.__name__ = view.__qualname__ = task.name
    return view


def _unlock(request, citizen, form, subject):
    services.unlock(request.staff, _live_key(citizen), form.presented(), ip=client_ip(request))


def _new_pin(request, citizen, form, subject):
    letters.issue_new_pin(request.staff, _live_key(citizen), form.presented(), address=form.cleaned_data["address"],
                          delivery=form.cleaned_data["delivery"], ip=client_ip(request))


def _change_contact(request, citizen, form, subject):
    services.start_contact_change(request.staff, _live_key(citizen), form.cleaned_data["kind"],
                                  form.cleaned_data["value"], form.presented(), ip=client_ip(request))


def _activate_signing(request, citizen, form, subject):
    services.start_signing_activation(request.staff, _live_key(citizen), form.presented(), ip=client_ip(request))


def _may_activate_signing(citizen, key, now) -> bool:
    from chave.signing.services import active_credential

    return key.effective_status(now) == KeyStatus.ACTIVE and active_credential(citizen) is None


def _renew(request, citizen, form, subject):
    services.renew_document(request.staff, _live_key(citizen), form.presented(), form.cleaned_data["document_expiry"],
                            ip=client_ip(request))


def _new_document(request, citizen, form, subject):
    services.record_new_document(request.staff, _live_key(citizen), form.presented(),
                                 form.cleaned_data["document_expiry"], ip=client_ip(request))


def _foreign_resident(citizen, key, now) -> bool:
    return key.is_live and citizen.doc_type != DocType.CITIZEN_CARD


def _cancel(request, citizen, form, subject):
    services.cancel(request.staff, _live_key(citizen), form.presented(), ip=client_ip(request))


def _cancel_letter(request, citizen, form, letter):
    letters.cancel_letter(letter, request.staff, reason=form.cleaned_data["reason"], presented=form.presented(),
                          ip=client_ip(request))


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("unlock", gettext_lazy("Unlock the key"),
         gettext_lazy("The key works again at once, with the citizen's PIN. The citizen is told on their contacts."),
         gettext_lazy("Unlock the key"), gettext_lazy("The key is unlocked."), PresentedForm, "unlock", _unlock,
         applies=lambda citizen, key, now: key.effective_status(now) in (KeyStatus.LOCKED, KeyStatus.BLOCKED)),
    Task("new_pin", gettext_lazy("New PIN by letter"),
         gettext_lazy("A temporary PIN is printed in a sealed letter, posted to the citizen or printed here to hand "
                      "over. You never see it. It is valid for %(days)d days and must be changed at first use. The "
                      "citizen's current PIN stops working."),
         gettext_lazy("Issue a new PIN"),
         gettext_lazy("A new temporary PIN is on its way. The previous PIN no longer works."), NewPinForm, "pin",
         _new_pin, fields=("delivery", "address")),
    Task("change_contact", gettext_lazy("Change the mobile number or e-mail"),
         gettext_lazy("A code is sent to the new contact; the citizen types it on the citizen screen of your desk. "
                      "The contact changes once the code is right."),
         gettext_lazy("Send the code"),
         gettext_lazy("The code is sent. The citizen types it on the citizen screen."), ContactChangeForm, "contact",
         _change_contact, fields=("kind", "value")),
    Task("activate_signing", gettext_lazy("Activate signing"),
         gettext_lazy("The citizen can then sign PDF documents with their key. "
                      "The citizen chooses a signing PIN on the citizen screen of your desk: a PIN different from "
                      "their Chave PIN, that nobody else sees. The citizen is told on their contacts."),
         gettext_lazy("Ask for the signing PIN on the citizen screen"),
         gettext_lazy("The citizen screen asks for the signing PIN."), PresentedForm, "signing", _activate_signing,
         applies=_may_activate_signing),
    Task("renew", gettext_lazy("Record a renewed document"),
         gettext_lazy("When the citizen shows a renewed identity document with the same number (a Citizen Card "
                      "keeps its NIC), the key stays valid with it: the key's validity follows the new document. "
                      "The citizen is told on their contacts."),
         gettext_lazy("Record the renewed document"),
         gettext_lazy("The renewed document is recorded: the key's validity follows it."), RenewalForm, "renew",
         _renew, fields=("document_expiry",)),
    Task("new_document", gettext_lazy("Record a renewed document with a new number"),
         gettext_lazy("For a foreign resident whose renewed passport or residence document has a new number: give "
                      "the renewed document's details, as in your hands. It replaces the document on record, the "
                      "key's validity follows its expiry, and the citizen is told on their contacts. The PIN, the "
                      "contacts and the portals' sign-ins stay as they are."),
         gettext_lazy("Record the new document"),
         gettext_lazy("The renewed document is recorded with its new number: the key's validity follows it."),
         NewDocumentForm, "newdoc", _new_document, applies=_foreign_resident,
         fields=("document_expiry", "same_person")),
    Task("cancel", gettext_lazy("Cancel the key"),
         gettext_lazy("The key can no longer be used and its contacts are released."),
         gettext_lazy("Cancel the key"), gettext_lazy("The key is cancelled."), PresentedForm, "cancel", _cancel,
         dangerous=True, confirm=gettext_lazy("Cancel this citizen's key?"),
         confirm_button=gettext_lazy("Yes, cancel the key"),
         consequences=(gettext_lazy("The key stops working at once, on every portal and in the Chave app."),
                       gettext_lazy("Its mobile number and e-mail address are released."),
                       gettext_lazy("This cannot be undone: to use Chave again, the citizen registers again."))),
]}
CANCEL_LETTER = Task(
    "cancel_letter", gettext_lazy("Cancel a letter"),
    gettext_lazy("For a letter lost in the post, or one that should not be used. Its PIN stops working."),
    gettext_lazy("Cancel the letter"), gettext_lazy("The letter is cancelled and its PIN no longer works."),
    PresentedForm, "letter", _cancel_letter, dangerous=True, confirm=gettext_lazy("Cancel this letter?"),
    confirm_button=gettext_lazy("Yes, cancel the letter"),
    consequences=(gettext_lazy("The PIN in the letter stops working, even if the letter turns up."),
                  gettext_lazy("If the citizen has no other PIN, the key has none until a new one is issued.")))

unlock = _task_view(TASKS["unlock"])
new_pin = _task_view(TASKS["new_pin"])
change_contact = _task_view(TASKS["change_contact"])
cancel = _task_view(TASKS["cancel"])
activate_signing = _task_view(TASKS["activate_signing"])
renew = _task_view(TASKS["renew"])
new_document = _task_view(TASKS["new_document"])


def _letter_of(pk: int, letter_id) -> Letter:
    """The letter ``letter_id`` of citizen ``pk``, or 404. The citizen is found by their primary key
    (a number too big for the database then finds nobody); ``citizen_id=pk`` would send it to the
    database as it is (SQLite refuses an integer over 64 bits: a 500)."""
    return get_object_or_404(Letter, pk=letter_id, citizen=get_object_or_404(Citizen, pk=pk))


@staff_only("citizen.act")
@require_http_methods(["GET", "POST"])
def cancel_letter(request, pk: int, letter_id):
    letter = _letter_of(pk, letter_id)
    return _task_page(request, letter.citizen, CANCEL_LETTER, subject=letter)


def _letter_step(request, pk: int, letter_id, step, done: str):
    """A one-click step on a citizen's letter; a refusal is shown on the citizen's page."""
    letter = _letter_of(pk, letter_id)
    try:
        step(request.staff, letter, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done)
    return redirect("counter:citizen", pk=pk)


@staff_only("citizen.act")
@require_POST
def hand_over(request, pk: int, letter_id):
    return _letter_step(request, pk, letter_id, letters.hand_over,
                        _("Recorded: the sealed PIN mailer was handed over."))


@staff_only("citizen.act")
@require_POST
def print_again(request, pk: int, letter_id):
    return _letter_step(request, pk, letter_id, letters.print_again,
                        _("The PIN mailer is on its way to the printer again."))


# --- Supervision -----------------------------------------------------------------------------


def _day(request) -> dt.date:
    try:
        return dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        return clock.today()


@staff_only("report.view")
@require_safe
def report(request):
    day = _day(request)
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    actions = list(CounterAction.objects.filter(at__gte=start, at__lt=start + dt.timedelta(days=1))
                   .select_related("staff", "citizen", "reversed_by"))
    for action in actions:
        action.reversible = services.may_reverse(action, request.staff)
    return render(request, "counter/report.html", {
        "staff": request.staff, "day": day, "rows": services.daily_report(day), "actions": actions,

    })


@staff_only("action.reverse")
@require_POST
def reverse_action(request, action_id: int):
    action = get_object_or_404(CounterAction, pk=action_id)
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            services.reverse(request.staff, action, form.cleaned_data["reason"], ip=client_ip(request))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect(f"{_url('counter:report')}?day={timezone.localdate(action.at).isoformat()}")
        messages.success(request, _("The action is reversed."))
    else:
        messages.error(request, _("Say why the action is reversed."))
    return redirect(f"{_url('counter:report')}?day={timezone.localdate(action.at).isoformat()}")


# --- Mail room -------------------------------------------------------------------------------


@staff_only("letters.print")
@require_safe
def letter_list(request):
    return render(request, "counter/letters.html", {
        "staff": request.staff,
        "ready": Letter.objects.filter(status=LetterStatus.READY).count(),
        "queued": Letter.objects.filter(status=LetterStatus.QUEUED).count(),
        "batches": PrintBatch.objects.all()[:30],
    })


@staff_only("letters.print")
@require_POST
def make_batch(request):
    batch = letters.make_batch(request.staff)
    if batch is None:
        messages.info(request, _("No letter is ready to print."))
    else:
        messages.success(request, _("Print batch %(n)d is ready.") % {"n": batch.pk})
    return redirect("counter:letters")


@staff_only("letters.print")
@require_safe
def batch_download(request, batch_id: int):
    batch = get_object_or_404(PrintBatch, pk=batch_id)
    try:
        document = letters.batch_pdf(request.staff, batch)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("counter:letters")
    response = HttpResponse(document, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="chave-batch-{batch.pk}.pdf"'
    return response


@staff_only("letters.print")
@require_POST
def batch_posted(request, batch_id: int):
    batch = get_object_or_404(PrintBatch, pk=batch_id)
    count = letters.mark_posted(request.staff, batch)
    messages.success(request, _("Batch %(batch)d marked as posted (%(n)d letters).") % {"batch": batch.pk, "n": count})
    return redirect("counter:letters")
