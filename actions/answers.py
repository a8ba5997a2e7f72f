"""The assistant's French answers, composed from the fiche.

Pure functions (fiche, question, instant) -> Reply, so that every answer can be tested
without Rasa. No fact is written here: numbers, emails, hours, addresses and links all come
from the Fiche object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time

from actions import markdown
from actions.fiche import CHANNELS, DAY_NAMES, PROCEDURES, Cell, Fiche, PhoneService, hour_text
from actions.hours import Moment, holiday_name, is_open, next_opening, to_noumea, when_text

# The two main services: asked about when the customer names none.
MAIN_SERVICES = ("1000", "1016")
ALWAYS_OPEN_SERVICE = "1012"

# Short button titles (Messenger shows at most 20 characters).
CHANNEL_BUTTONS = {"telephone": "Par téléphone", "agence": "En agence", "courrier": "Par mail / internet"}

# Topic names used to offer a choice when the assistant is unsure (not facts).
TOPIC_TITLES = {
    "perte_vol": "Perte ou vol",
    "code_puk": "Code PUK",
    "blocage_ligne": "Blocage de ligne",
    "changement_offre": "Changer d'offre",
    "support_technique": "Support technique",
    "reclamation": "Réclamation",
    "resiliation": "Résiliation",
    "souscription": "Souscrire une offre",
    "horaires": "Horaires",
    "contact_telephone": "Numéros à appeler",
    "contact_email": "Adresses email",
    "contact_adresse": "Adresse de l'agence",
    "contact_etranger": "Appel de l'étranger",
    "contact_forum": "Forum",
    "contact_chat": "Chat et Messenger",
    "contact_general": "Nous contacter",
    "suivi_conso": "Ma consommation",
    "delai_retablissement": "Panne : délai",
    "cout_appel_service_client": "Coût d'un appel",
    "guide_tarifaire": "Tarifs",
    "demander_humain": "Un conseiller",
    "info_service": "Nos numéros",
}


@dataclass
class Reply:
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)


def button(title: str, payload: str) -> dict[str, str]:
    return {"title": title, "payload": payload}


def channel_button(procedure: str, channel: str) -> dict[str, str]:
    """A button for one channel of a procedure. Its payload names the procedure, so that it
    still means that procedure when tapped after the conversation has moved on."""
    return button(CHANNEL_BUTTONS[channel], f'/{procedure}{{"canal":"{channel}"}}')


def _with_source(fiche: Fiche, *lines: str) -> str:
    """An answer's lines as Markdown blocks (markdown.blocks), ending with the source line."""
    return markdown.blocks([*lines, fiche.source_text])


CHANNEL_PROMPT = "Je peux détailler un canal :"

# How each status reads before the cell's answer.
STATUS_PREFIX = {"available": "oui — ", "restricted": "", "unavailable": "NON — "}
# How a channel that works only in some cases reads in a one-sentence summary.
RESTRICTED_MARK = " (sous conditions)"


@dataclass(frozen=True)
class Context:
    """What an answer depends on besides the fiche: the current instant, whether the customer
    is outside New Caledonia, the services named, and the moment asked about (if any)."""

    instant: datetime
    abroad: bool = False
    services: Sequence[str] = ()
    moment: Moment | None = None
    nights: bool = False
    holidays: bool = False


def _cell_line(fiche: Fiche, channel: str, cell: Cell, abroad: bool = False) -> str:
    return markdown.bullet(f"{fiche.channels[channel]} : {STATUS_PREFIX[cell.status]}{cell.text(abroad)}")


def channel_phrase(fiche: Fiche, channel: str) -> str:
    """'Par téléphone' -> 'par téléphone': the channel inside a sentence."""
    label = fiche.channels[channel]
    return label[0].lower() + label[1:]


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _join(items: Sequence[str], last_word: str) -> str:
    """'a', 'a ou b', 'a, b ou c' (or 'et')."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last_word} {items[-1]}"


def join_or(items: Sequence[str]) -> str:
    return _join(items, "ou")


def join_and(items: Sequence[str]) -> str:
    return _join(items, "et")


def abroad_line(fiche: Fiche) -> str:
    return (
        f"Depuis l'extérieur de la Nouvelle-Calédonie, les numéros courts ne fonctionnent pas : "
        f"appelez le {fiche.abroad_number} ({fiche.abroad_price})."
    )


def body(fiche: Fiche, reply: Reply) -> str:
    """A reply's text without its source line nor the prompt of its buttons, to combine
    several answers into one (a combined reply has no buttons)."""
    lines = [
        line for line in markdown.lines_of(reply.text) if line not in (fiche.source_text, CHANNEL_PROMPT)
    ]
    return markdown.blocks(lines)


def combine(fiche: Fiche, replies: Sequence[Reply]) -> Reply:
    """One reply answering several questions, in order, with one source line."""
    if len(replies) == 1:
        return replies[0]
    sourced = any(r.text.endswith(fiche.source_text) for r in replies)
    parts = [body(fiche, r) for r in replies]
    return Reply("\n\n".join(parts + ([fiche.source_text] if sourced else [])))


# --- procedures -------------------------------------------------------------------------


def procedure_summary(fiche: Fiche, procedure: str) -> str:
    """One sentence: where a procedure can be done, and where not.
    'Code PUK : en agence (Agence Entreprise) ou par courrier, mail ou internet ; pas par téléphone.'"""
    proc = fiche.procedures[procedure]
    working = [c for c in CHANNELS if proc.cells[c].status != "unavailable"]
    refused = [c for c in CHANNELS if c not in working]
    all_restricted = all(proc.cells[c].status == "restricted" for c in working)
    where = [
        channel_phrase(fiche, c)
        + (RESTRICTED_MARK if proc.cells[c].status == "restricted" and not all_restricted else "")
        for c in working
    ]
    sentence = f"{proc.label} : {'sous conditions, ' if all_restricted else ''}{join_or(where)}"
    if refused:
        sentence += f" ; pas {join_or([channel_phrase(fiche, c) for c in refused])}"
    return sentence + "."


def procedure_answer(fiche: Fiche, procedure: str, channel: str | None = None, abroad: bool = False) -> Reply:
    """A procedure, for one channel or (channel None) for all of them. The first line is the
    answer in one sentence (bold); the details follow as a list."""
    proc = fiche.procedures[procedure]
    working = [c for c in CHANNELS if proc.cells[c].status != "unavailable"]
    tail = [abroad_line(fiche)] if abroad else []
    if channel not in CHANNELS:
        # Channels that work first, then what does not.
        order = working + [c for c in CHANNELS if c not in working]
        lines = [markdown.bold(procedure_summary(fiche, procedure))]
        lines += [_cell_line(fiche, c, proc.cells[c], abroad) for c in order] + tail
        if len(working) > 1:
            lines.append(CHANNEL_PROMPT)
        return Reply(
            _with_source(fiche, *lines),
            [channel_button(procedure, c) for c in working] if len(working) > 1 else [],
        )

    cell = proc.cells[channel]
    others = [c for c in working if c != channel]
    phrase = channel_phrase(fiche, channel)
    if cell.status == "available":
        first = markdown.bold(f"Oui, {phrase} : {cell.text(abroad)}")
        return Reply(_with_source(fiche, first, f"Démarche : {proc.label}.", *tail))
    if cell.status == "restricted":
        lines = [markdown.bold(f"{_capitalised(phrase)}, {cell.text(abroad)}"), f"Démarche : {proc.label}."]
        if others:
            lines.append(
                "Autres canaux, aux mêmes conditions :"
                if all(proc.cells[c].status == "restricted" for c in others)
                else "Autres canaux :"
            )
            lines += [_cell_line(fiche, c, proc.cells[c], abroad) for c in others]
        return Reply(_with_source(fiche, *lines, *tail))
    where = join_or([channel_phrase(fiche, c) for c in others])
    lines = [
        markdown.bold(f"Non, pas {phrase} : {where}."),
        f"{proc.label} — NON, pas par ce canal : {cell.text(abroad)}",
        "Voici ce qui fonctionne :",
    ]
    lines += [_cell_line(fiche, c, proc.cells[c], abroad) for c in others]
    return Reply(
        _with_source(fiche, *lines, *tail),
        [channel_button(procedure, c) for c in others] if len(others) > 1 else [],
    )


def which_procedure() -> Reply:
    """A channel was named with no topic in the conversation: ask which one."""
    return Reply(
        "Pour quelle démarche ? Choisissez-la ou décrivez-la en quelques mots.",
        [button(TOPIC_TITLES[p], f"/{p}") for p in PROCEDURES],
    )


# --- opening hours ----------------------------------------------------------------------


def _now_text(instant: datetime) -> str:
    local = to_noumea(instant)
    return f"Il est {hour_text(local.time())} à Nouméa ({DAY_NAMES[local.isoweekday() - 1]} {local.strftime('%d/%m')})."


def _day_text(instant: datetime) -> str:
    local = to_noumea(instant)
    return f"{DAY_NAMES[local.isoweekday() - 1]} {local.strftime('%d/%m/%Y')}"


def service_state(service: PhoneService, instant: datetime, moment: Moment | None = None) -> str:
    """'ouvert en ce moment' or 'fermé en ce moment (jour férié : ...) ; réouverture demain mardi à 7h30',
    or the same for the moment asked about ('ouvert ce jour-là de 7h30 à 15h45', 'fermé à cette heure-là')."""
    at = moment.instant if moment else instant
    holiday = holiday_name(to_noumea(at).date())
    reason = f" (jour férié : {holiday})" if holiday else ""
    if moment and moment.whole_day:
        day = to_noumea(at).date()
        if day.isoweekday() in service.days and not holiday:
            opens, closes = service.span
            return f"ouvert ce jour-là de {hour_text(opens)} à {hour_text(closes)}"
        start = datetime.combine(day, time(0, 0), tzinfo=to_noumea(at).tzinfo)
        return f"fermé ce jour-là{reason} ; réouverture {when_text(next_opening(service, start), instant)}"
    when = "à cette heure-là" if moment else "en ce moment"
    if is_open(service, at):
        return f"ouvert {when}"
    return f"fermé {when}{reason} ; réouverture {when_text(next_opening(service, at), instant)}"


def _service_line(service: PhoneService, ctx: Context) -> str:
    number = "" if ctx.abroad else f", au {service.number}"
    if service.always_open:
        return markdown.bullet(f"{service.name}{number} : {service.hours_text}.")
    hours = f"{service.hours_text}, heure de Nouméa" if ctx.abroad else service.hours_text
    return markdown.bullet(
        f"{service.name}{number} : {hours} — {service_state(service, ctx.instant, ctx.moment)}."
    )


def _closed_at(service: PhoneService, ctx: Context) -> bool:
    at = ctx.moment.instant if ctx.moment else ctx.instant
    if ctx.moment and ctx.moment.whole_day:
        day = to_noumea(at).date()
        return service.always_open is False and (
            day.isoweekday() not in service.days or bool(holiday_name(day))
        )
    return not is_open(service, at)


def _named(service: PhoneService, ctx: Context) -> str:
    """'Service Clientèle (1000)'; from abroad, without the short number that does not work there."""
    return service.name if ctx.abroad else f"{service.name} ({service.number})"


def _asked_text(ctx: Context) -> str:
    if not ctx.moment:
        return "En ce moment"
    at = ctx.moment.instant
    day = _day_text(at)
    return f"Le {day}" if ctx.moment.whole_day else f"Le {day} à {hour_text(to_noumea(at).time())}"


def hours_summary(fiche: Fiche, keys: Sequence[str], ctx: Context) -> str:
    """One sentence: open or closed, now or at the moment asked, and when it reopens.
    'En ce moment, fermé : Service Clientèle (1000) et Agence Entreprise (1016) ; réouverture lundi à 7h30.'"""
    closed = [k for k in keys if _closed_at(fiche.phones[k], ctx)]
    opened = [k for k in keys if k not in closed]
    when = _asked_text(ctx)
    if closed and opened:
        states = [f"{_named(fiche.phones[k], ctx)} {'fermé' if k in closed else 'ouvert'}" for k in keys]
        return f"{when} : {join_and(states)}."
    names = join_and([_named(fiche.phones[k], ctx) for k in keys])
    if opened:
        return f"{when}, ouvert : {names}."
    at = ctx.moment.instant if ctx.moment else ctx.instant
    if ctx.moment and ctx.moment.whole_day:
        at = datetime.combine(to_noumea(at).date(), time(0, 0), tzinfo=to_noumea(at).tzinfo)
    reopens = min(next_opening(fiche.phones[k], at) for k in keys)
    return f"{when}, fermé : {names} ; réouverture {when_text(reopens, ctx.instant)}."


def hours_answer(fiche: Fiche, ctx: Context) -> Reply:
    keys = [s for s in ctx.services if s in fiche.phones] or list(MAIN_SERVICES)
    detail = _now_text(ctx.instant)
    if ctx.moment:
        detail = f"{detail} Horaires (heure de Nouméa) :"
    lines = [markdown.bold(hours_summary(fiche, keys, ctx)), detail]
    lines += [_service_line(fiche.phones[k], ctx) for k in keys]
    if ctx.holidays and not ctx.moment:
        lines.append("Les jours fériés de Nouvelle-Calédonie, ces services sont fermés.")
    closed = any(_closed_at(fiche.phones[k], ctx) for k in keys)
    if (closed or ctx.nights or ctx.holidays) and ALWAYS_OPEN_SERVICE not in keys:
        info = fiche.phones[ALWAYS_OPEN_SERVICE]
        number = "" if ctx.abroad else f"le {info.number} "
        lines.append(f"En dehors des horaires, {number}({info.name}) répond {info.hours_text}.")
    if ctx.abroad:
        lines.append(abroad_line(fiche))
    return Reply(_with_source(fiche, *lines))


# --- contacts and information -----------------------------------------------------------


def contact_telephone(fiche: Fiche, ctx: Context) -> Reply:
    keys = [s for s in ctx.services if s in fiche.phones] or list(fiche.phones)
    if ctx.abroad:
        first = (
            f"Depuis l'étranger, appelez le {fiche.abroad_number} : les numéros courts ne fonctionnent pas."
        )
    else:
        first = (
            "Nos numéros : "
            + join_and([f"{fiche.phones[k].number} ({fiche.phones[k].name})" for k in keys])
            + "."
        )
    lines = [markdown.bold(first)] + [_service_line(fiche.phones[k], ctx) for k in keys]
    if ctx.abroad:
        lines.append(abroad_line(fiche))
    elif not ctx.services:
        lines.append(markdown.bullet(f"Depuis l'extérieur de la Nouvelle-Calédonie : {fiche.abroad_number}."))
    return Reply(_with_source(fiche, *lines))


def contact_email(fiche: Fiche, ctx: Context) -> Reply:
    emails = [
        f"{fiche.email_service_clientele} (Service Clientèle)",
        f"{fiche.email_agence} (Agence Entreprise)",
    ]
    if "1016" in ctx.services:  # the agency asked about: its address first
        emails.reverse()
    return Reply(
        _with_source(
            fiche,
            markdown.bold(f"Par email : {join_or(emails)}."),
            markdown.bullet(f"Par courrier postal : {fiche.postal_name}, {fiche.postal_address}"),
        )
    )


def contact_adresse(fiche: Fiche, ctx: Context) -> Reply:
    return Reply(
        _with_source(
            fiche,
            markdown.bold(f"Sur place : {fiche.agency_name}, {fiche.agency_address}."),
            markdown.bullet(f"Par courrier : {fiche.postal_name}, {fiche.postal_address}."),
        )
    )


def contact_etranger(fiche: Fiche, ctx: Context) -> Reply:
    return Reply(
        _with_source(
            fiche,
            markdown.bold(f"Depuis l'extérieur de la Nouvelle-Calédonie, appelez le {fiche.abroad_number}."),
            f"Prix : {fiche.abroad_price}.",
            f"Guide tarifaire : {fiche.tariff_guide}",
        )
    )


def contact_forum(fiche: Fiche, ctx: Context) -> Reply:
    return Reply(_with_source(fiche, markdown.bold(f"Le forum participatif de l'OPT : {fiche.forum}")))


def contact_chat(fiche: Fiche, ctx: Context) -> Reply:
    return Reply(
        _with_source(
            fiche,
            markdown.bold(
                f"Chat Cagou vous répond sur le site {fiche.chat_site} et sur {fiche.chat_messenger}."
            ),
        )
    )


def contact_general(fiche: Fiche, ctx: Context) -> Reply:
    service = fiche.phones[MAIN_SERVICES[0]]
    first = (
        f"Pour nous joindre : le {fiche.abroad_number} depuis l'étranger, ou {fiche.email_service_clientele}."
        if ctx.abroad
        else f"Pour nous joindre : le {service.number} ({service.name}) ou {fiche.email_service_clientele}."
    )
    phones = [_service_line(fiche.phones[k], ctx) for k in fiche.phones]
    abroad = (
        abroad_line(fiche) if ctx.abroad else markdown.bullet(f"Depuis l'étranger : {fiche.abroad_number}")
    )
    return Reply(
        _with_source(
            fiche,
            markdown.bold(first),
            *phones,
            abroad,
            markdown.bullet(f"Par email : {fiche.email_service_clientele} ou {fiche.email_agence}"),
            markdown.bullet(f"Sur place : {fiche.agency_name}, {fiche.agency_address}"),
            markdown.bullet(f"Par courrier : {fiche.postal_name}, {fiche.postal_address}"),
            markdown.bullet(f"Forum : {fiche.forum} ; chat : {fiche.chat_site} et {fiche.chat_messenger}"),
        )
    )


def suivi_conso(fiche: Fiche, ctx: Context) -> Reply:
    current = [item.channel for item in fiche.consumption if item.current_month]
    lines = [markdown.bold(f"Consommation du mois en cours : par {join_or(current)}.")]
    for item in fiche.consumption:
        if item.current_month:
            lines.append(markdown.bullet(f"{item.channel} : oui."))
        else:
            note = f" ({item.note})" if item.note else ""
            lines.append(markdown.bullet(f"{item.channel} : non{note}."))
    return Reply(_with_source(fiche, *lines))


def delai_retablissement(fiche: Fiche, ctx: Context) -> Reply:
    support = fiche.procedures["support_technique"].cells["telephone"].text(ctx.abroad)
    claim = fiche.procedures["reclamation"].cells["courrier"].text(ctx.abroad)
    return Reply(
        _with_source(
            fiche,
            markdown.bold(fiche.restoration_text),
            "C'est le délai de rétablissement du service avant compensation.",
            markdown.bullet(f"Signaler une panne (SAV) par téléphone : {support}"),
            markdown.bullet(f"Faire une réclamation par mail ou internet : {claim}"),
        )
    )


def cout_appel_service_client(fiche: Fiche, ctx: Context) -> Reply:
    return Reply(
        _with_source(
            fiche,
            markdown.bold(
                f"Les appels au service clientèle sont pris en charge : {fiche.customer_service_calls}."
            ),
            f"Depuis l'étranger, le {fiche.abroad_number} coûte le {fiche.abroad_price}.",
        )
    )


def _main_service_lines(fiche: Fiche, ctx: Context) -> list[str]:
    """Whom to ask about prices. Abroad, both numbers: a price question about a destination
    ("le roaming en Australie") is often asked before leaving."""
    service = fiche.phones[MAIN_SERVICES[0]]
    lines = [
        markdown.bullet(
            f"{service.name} au {service.number}, {service.hours_text} — {service_state(service, ctx.instant)}."
        )
    ]
    return lines + [markdown.bullet(abroad_line(fiche))] if ctx.abroad else lines


def guide_tarifaire(fiche: Fiche, ctx: Context) -> Reply:
    """Prices, offers, coverage, roaming: the fiche of the customer service gives none of them.
    Say so (never an invented figure), then the tariff guide and whom to ask."""
    return Reply(
        _with_source(
            fiche,
            markdown.bold(
                f"Tarifs en vigueur et description des offres : le guide tarifaire, {fiche.tariff_guide}"
            ),
            "La fiche du service client ne donne ni les prix, ni les offres, ni la couverture ou l'itinérance : "
            "je ne peux pas vous les indiquer sans risque d'erreur.",
            "Pour un tarif précis ou une offre adaptée à votre entreprise :",
            *_main_service_lines(fiche, ctx),
            markdown.bullet(f"Par email : {fiche.email_service_clientele}"),
        )
    )


def _service_purpose(fiche: Fiche, key: str, ctx: Context) -> str:
    """What a number is for, in the fiche's words."""
    if key == "etranger":
        return (
            f"{fiche.abroad_number} : le numéro à appeler depuis l'extérieur de la Nouvelle-Calédonie "
            f"({fiche.abroad_price})."
        )
    if key == fiche.consumption_number:
        item = next(c for c in fiche.consumption if c.number == key)
        return f"{key} : le suivi de la consommation du mois en cours ({item.channel})."
    service = fiche.phones[key]
    # Abroad, a short number is named only when the customer asked about it: it does not work from there.
    number = service.name if ctx.abroad and key not in ctx.services else f"{service.number} : {service.name}"
    if service.always_open:
        return f"{number}, {service.note}."
    hours = f"{service.hours_text}, heure de Nouméa" if ctx.abroad else service.hours_text
    return f"{number}, {hours}."


def _short_purpose(fiche: Fiche, key: str) -> str:
    if key == "etranger":
        return f"{fiche.abroad_number} (depuis l'étranger)"
    if key == fiche.consumption_number:
        return f"{key} (consommation)"
    return f"{key} ({fiche.phones[key].name})"


def info_service(fiche: Fiche, ctx: Context) -> Reply:
    """What each phone service, the consumption number and the number from abroad are for."""
    known = list(fiche.phones) + [fiche.consumption_number, "etranger"]
    keys = [s for s in ctx.services if s in known] or list(fiche.phones) + [
        fiche.consumption_number,
        "etranger",
    ]
    if len(keys) == 1:
        lines = [markdown.bold(_service_purpose(fiche, keys[0], ctx))]
    else:
        shown = [k for k in keys if not (ctx.abroad and k in fiche.phones and k not in ctx.services)]
        lines = [markdown.bold("Nos numéros : " + join_and([_short_purpose(fiche, k) for k in shown]) + ".")]
        lines += [markdown.bullet(_service_purpose(fiche, k, ctx)) for k in keys]
    if set(MAIN_SERVICES) <= set(keys) and not (ctx.abroad and not ctx.services):
        lines.append(
            f"Le {MAIN_SERVICES[0]} est le {fiche.phones[MAIN_SERVICES[0]].name} ; le {MAIN_SERVICES[1]} "
            f"joint l'{fiche.phones[MAIN_SERVICES[1]].name} ({fiche.agency_address})."
        )
    if len(keys) > 1 or not ctx.services:
        lines.append(
            f"Chat Cagou (cet assistant) répond sur le site {fiche.chat_site} et sur {fiche.chat_messenger}."
        )
    if ctx.abroad and any(k in fiche.phones for k in keys):
        lines.append(abroad_line(fiche))
    return Reply(_with_source(fiche, *lines))


TOPIC_ANSWERS = {
    "horaires": hours_answer,
    "contact_telephone": contact_telephone,
    "contact_email": contact_email,
    "contact_adresse": contact_adresse,
    "contact_etranger": contact_etranger,
    "contact_forum": contact_forum,
    "contact_chat": contact_chat,
    "contact_general": contact_general,
    "suivi_conso": suivi_conso,
    "delai_retablissement": delai_retablissement,
    "cout_appel_service_client": cout_appel_service_client,
    "guide_tarifaire": guide_tarifaire,
    "info_service": info_service,
}
# Kept for the tests and the console that list the information topics.
INFO_ANSWERS = {k: v for k, v in TOPIC_ANSWERS.items() if k not in ("horaires", "info_service")}


# --- human handoff and clarification ----------------------------------------------------


def handoff_answer(
    fiche: Fiche, instant: datetime, after_failure: bool = False, abroad: bool = False
) -> Reply:
    info = fiche.phones[ALWAYS_OPEN_SERVICE]
    intro = (
        FAILURE_INTRO + "un conseiller pourra vous aider."
        if after_failure
        else "Pour parler à un conseiller :"
    )
    lines = [intro, *_alternatives(fiche, instant, abroad)]
    if not abroad:
        lines.append(f"En dehors des horaires, le {info.number} répond {info.hours_text}.")
    return Reply(_with_source(fiche, *lines))


# --- live handoff (a person answers on the widget or in the Messenger inbox) -----------------

BACK_TO_ASSISTANT = "Revenir à l'assistant"


FAILURE_INTRO = "Je n'arrive pas à comprendre votre demande : "


def _alternatives(fiche: Fiche, instant: datetime, abroad: bool = False) -> list[str]:
    """The ways to reach a person: the Service Clientèle (open or closed; from abroad, its number
    from abroad), its email, the agency."""
    service = fiche.phones["1000"]
    phone = (
        f"- {service.name} : {abroad_line(fiche)}"
        if abroad
        else f"- {service.name} au {service.number}, {service.hours_text} — {service_state(service, instant)}."
    )
    return [
        phone,
        f"- Par email : {fiche.email_service_clientele}",
        f"- Sur place : {fiche.agency_name}, {fiche.agency_address}",
    ]


def _person_coming(fiche: Fiche, instant: datetime, after_failure: bool, where: str, *after: str) -> str:
    intro = FAILURE_INTRO if after_failure else ""
    return _with_source(
        fiche,
        intro + where,
        "Si vous préférez, vous pouvez aussi nous joindre :",
        *_alternatives(fiche, instant),
        *after,
    )


def waiting_for_person(fiche: Fiche, instant: datetime, after_failure: bool = False) -> Reply:
    """Said once, when the conversation joins the live desk's queue (website widget)."""
    text = _person_coming(
        fiche,
        instant,
        after_failure,
        "je transmets la conversation à un conseiller, qui va vous répondre ici. "
        "Vous pouvez continuer à écrire : il lira tout l'échange.",
        f"Pour reprendre avec l'assistant automatique : « {BACK_TO_ASSISTANT} ».",
    )
    return Reply(text, [button(BACK_TO_ASSISTANT, "/retour_assistant")])


def handed_to_inbox(fiche: Fiche, instant: datetime, after_failure: bool = False) -> Reply:
    """Said once, when a Messenger conversation is passed to the page's inbox (its staff)."""
    return Reply(
        _person_coming(
            fiche,
            instant,
            after_failure,
            "je transmets la conversation à un conseiller de l'OPT, qui va vous répondre ici, "
            "dans Messenger. Vous pouvez continuer à écrire.",
        )
    )


def agent_name(login: str) -> str:
    """The first name a customer sees of a staff member: "marie.dupont" -> "Marie"."""
    first = login.replace("_", ".").replace("-", ".").split(".")[0].strip()
    return (first[:1].upper() + first[1:].lower()) if first else "Un conseiller"


def agent_joined(name: str) -> str:
    return f"Un conseiller a rejoint la conversation : {name}."


AGENT_LEFT = (
    "Le conseiller a terminé. C'est de nouveau l'assistant automatique qui vous répond : "
    "posez-moi votre question si vous en avez une autre."
)
BACK_WITH_ASSISTANT = "C'est de nouveau l'assistant automatique qui vous répond. Quelle est votre question ?"


# --- out of hours: a callback request (actions/callback.py) ---------------------------------

CALLBACK_OFFER = (
    "Vous pouvez aussi laisser une demande de rappel : un conseiller vous recontactera "
    "aux heures d'ouverture. Voulez-vous en laisser une ?"
)
CALLBACK_BUTTONS = [button("Être rappelé(e)", "/rappel"), button("Non merci", "/deny")]
CALLBACK_SUBJECT_MAX = 300
CALLBACK_QUESTIONS = {
    "rappel_nom": "Pour la demande de rappel : quel est votre nom ? (« annuler » pour arrêter)",
    "rappel_contact": (
        "À quel numéro calédonien (6 chiffres) ou à quelle adresse email pouvons-nous vous recontacter ?"
    ),
    "rappel_sujet": "En une phrase, quel est l'objet de votre demande ?",
}
CALLBACK_BAD_NAME = "Je n'ai pas reconnu un nom : écrivez votre nom (des lettres seulement), ou « annuler »."
CALLBACK_BAD_CONTACT = (
    "Ce n'est ni un numéro calédonien à 6 chiffres (les espaces sont permis) ni une adresse email. "
    "Pouvez-vous le réécrire ? Ou écrivez « annuler »."
)
CALLBACK_BAD_SUBJECT = f"Décrivez votre demande en une phrase (entre 5 et {CALLBACK_SUBJECT_MAX} caractères), ou écrivez « annuler »."
CALLBACK_CANCELLED = "Demande de rappel annulée. Je reste à votre disposition pour vos questions."
CALLBACK_DECLINED = "D'accord, pas de demande de rappel. Je reste à votre disposition pour vos questions."


def callback_offer(reply: Reply) -> Reply:
    """`reply` (today's contacts, service closed) followed by the offer of a callback."""
    return Reply(f"{reply.text}\n\n{CALLBACK_OFFER}", [*reply.buttons, *CALLBACK_BUTTONS])


def callback_recorded(fiche: Fiche, name: str, contact: str, instant: datetime) -> str:
    service = fiche.phones["1000"]
    when = (
        "pendant les heures d'ouverture"
        if is_open(service, instant)
        else f"dès la réouverture ({when_text(next_opening(service, instant), instant)})"
    )
    return (
        f"Merci {name}, votre demande de rappel est enregistrée. Un conseiller du {service.name} "
        f"vous recontactera au {contact} {when}."
    )


def clarify_answer(candidates: Sequence[str]) -> Reply:
    titles = [c for c in candidates if c in TOPIC_TITLES][:2]
    text = "Je ne suis pas sûr d'avoir compris. "
    text += "Vouliez-vous parler de l'un de ces sujets ?" if titles else "Pouvez-vous reformuler ?"
    buttons = [button(TOPIC_TITLES[t], f"/{t}") for t in titles]
    buttons.append(button(TOPIC_TITLES["demander_humain"], "/demander_humain"))
    return Reply(text + " Vous pouvez aussi reformuler votre question.", buttons)


# --- scope, other languages, yes/no ---------------------------------------------------------

SCOPE_QUESTION = (
    "Je réponds aux questions sur les lignes mobiles Mobilis Pro. "
    "Votre question concerne-t-elle une ligne mobile Mobilis Pro (téléphone portable, forfait, ligne) ?"
)
OUT_OF_SCOPE = (
    "Je ne peux vous aider que pour le service client Mobilis Pro (lignes mobiles professionnelles) : "
    "perte ou vol, code PUK, blocage, changement d'offre, support technique, réclamation, résiliation, "
    "souscription, horaires et contacts. Quelle est votre question ?"
)
ASK_QUESTION = "Très bien. Quelle est votre question ?"
# Small talk (no fact: these say what the assistant is and what it can do).
SMALL_TALK = {
    "greet": "Bonjour, je suis Chat Cagou, l'assistant du service client Mobilis Pro. Comment puis-je vous aider ? (perte ou vol, code PUK, résiliation, horaires, contacts...)",
    "goodbye": "Au revoir et bonne journée !",
    "thanks": "Avec plaisir ! Avez-vous une autre question sur votre ligne Mobilis Pro ?",
    "bot_challenge": "Je suis Chat Cagou, un assistant automatique de l'OPT pour les lignes Mobilis Pro. Si vous préférez parler à un conseiller, dites-le-moi.",
}
# The suggestion chips of the first message (issue 12): the questions customers ask most.
WELCOME_TOPICS = ("perte_vol", "code_puk", "resiliation", "horaires", "contact_general", "demander_humain")


def privacy_notice(retention_days: int | None, privacy_url: str | None) -> str:
    """One line: what is kept, for how long (CHAT_CAGOU_RETENTION_DAYS), where to read more."""
    kept = (
        f"vos messages sont conservés {retention_days} jours, puis effacés"
        if retention_days
        else "vos messages sont conservés par l'OPT"
    )
    line = f"Confidentialité : {kept} ; ils servent à vous répondre et à améliorer ce service."
    return f"{line} En savoir plus : {privacy_url}" if privacy_url else line


def welcome(retention_days: int | None, privacy_url: str | None) -> Reply:
    """The first message of a conversation: an automatic assistant, what it answers, what
    happens to the messages, and the most asked questions as buttons."""
    text = markdown.blocks(
        [
            "Bonjour, je suis Chat Cagou, l'assistant automatique du service client Mobilis Pro (OPT-NC).",
            "Je réponds aux questions sur les lignes mobiles professionnelles : perte ou vol, code PUK, "
            "résiliation, horaires, contacts… Vous pouvez aussi demander un conseiller.",
            privacy_notice(retention_days, privacy_url),
        ]
    )
    return Reply(text, [button(TOPIC_TITLES[t], f"/{t}") for t in WELCOME_TOPICS])


NOTHING_ELSE = "D'accord. Si vous avez une autre question sur votre ligne Mobilis Pro, je suis là."


def scope_question() -> Reply:
    """A procedure word without any sign of a mobile line ("j'ai perdu mon passeport"): ask."""
    return Reply(
        SCOPE_QUESTION, [button("Oui, ma ligne Mobilis", "/affirm"), button("Non, autre chose", "/deny")]
    )


def out_of_scope() -> Reply:
    return Reply(OUT_OF_SCOPE)


def other_language_answer(fiche: Fiche, ctx: Context, fact: Reply | None, in_scope: bool) -> Reply:
    """A message in another language: say in both languages that the assistant answers in
    French, then the fact asked (when recognised) and the essential contacts (when the
    question is ours or unclear; never for a plainly off-topic message)."""
    lines = [
        "Je suis Chat Cagou, l'assistant du service client Mobilis Pro : je réponds en français.",
        "I am Chat Cagou, the Mobilis Pro customer-service assistant: I answer in French.",
    ]
    if fact is not None:
        lines.append(body(fiche, fact))
    if not in_scope:
        lines.append(
            "I can only help with Mobilis Pro mobile lines (lost or stolen phone, PUK code, "
            "cancellation, opening hours, contacts)."
        )
        return Reply(markdown.blocks(lines))
    service = fiche.phones[MAIN_SERVICES[0]]
    info = fiche.phones[ALWAYS_OPEN_SERVICE]
    phone = (
        f"from abroad / depuis l'étranger : {fiche.abroad_number}"
        if ctx.abroad
        else f"{service.number} ({service.hours_text}) ; from abroad / depuis l'étranger : {fiche.abroad_number}"
    )
    lines += ["Contacts :", f"- {service.name} : {phone}"]
    if not ctx.abroad:
        lines.append(f"- {info.name} (24/7) : {info.number}")
    lines += [
        f"- Email : {fiche.email_service_clientele}",
        f"- {fiche.agency_name} : {fiche.agency_address}",
    ]
    return Reply(_with_source(fiche, *lines))


# --- replies of the channel guard (channels/guard.py), sent instead of Rasa's ----------------

EMPTY_TEXT = (
    "Votre message est vide. Écrivez-moi votre question sur votre ligne Mobilis Pro "
    "(perte ou vol, code PUK, résiliation, horaires, contacts...)."
)
UNREADABLE_TEXT = "Je n'ai pas pu lire votre message. Pouvez-vous l'écrire à nouveau, en texte simple ?"


def too_long(max_chars: int) -> str:
    return (
        f"Votre message est un peu long pour moi ({max_chars} caractères au plus). "
        "Pouvez-vous le résumer en une ou deux phrases ? Je vous répondrai volontiers."
    )


def rate_limited(wait_seconds: int) -> str:
    return (
        "Vous m'avez envoyé beaucoup de messages en peu de temps. Merci de patienter "
        f"{wait_seconds} seconde(s) avant d'écrire à nouveau : je reste à votre disposition."
    )


def unavailable(fiche: Fiche) -> str:
    """When Rasa or the action server could not answer: the essential contacts."""
    service = fiche.phones["1000"]
    return (
        "Je rencontre un problème technique et ne peux pas répondre à votre question pour le moment. "
        "Vous pouvez :\n\n"
        f"- appeler le {service.name} au {service.number}, {service.hours_text} ;\n"
        f"- écrire à {fiche.email_service_clientele} ;\n"
        f"- vous rendre à l'{fiche.agency_name}, {fiche.agency_address}.\n\n"
        "Vous pouvez aussi réessayer dans quelques minutes. Veuillez nous excuser."
    )


# --- the Messenger page's profile (channels/messenger_profile.py, `make messenger-profile`) ---

# Shown by Messenger before the first message (at most 160 characters).
MESSENGER_GREETING = (
    "Bonjour ! Je suis Chat Cagou, l'assistant automatique de l'OPT pour les lignes Mobilis Pro. "
    "Posez-moi votre question."
)
# The persistent menu: (title of at most 30 characters, button payload).
MESSENGER_MENU = (
    ("Horaires", "/horaires"),
    ("Perte ou vol", "/perte_vol"),
    ("Code PUK", "/code_puk"),
    ("Parler à un conseiller", "/demander_humain"),
)
# Ice breakers, the questions offered in a new conversation: (at most 80 characters, payload).
MESSENGER_ICE_BREAKERS = (
    ("Quels sont vos horaires ?", "/horaires"),
    ("J'ai perdu mon téléphone ou on me l'a volé", "/perte_vol"),
    ("Comment obtenir mon code PUK ?", "/code_puk"),
    ("Je voudrais parler à un conseiller", "/demander_humain"),
)


# --- "Cette réponse vous a-t-elle aidé ?" (actions/feedback.py) -------------------------------

FEEDBACK_QUESTION = "Cette réponse vous a-t-elle aidé ?"
FEEDBACK_THANKS = "Merci pour votre avis ! Avez-vous une autre question ?"
FEEDBACK_SORRY = (
    "Désolé que cette réponse ne vous ait pas aidé. Vous pouvez reformuler votre question "
    "en quelques mots, ou parler à un conseiller."
)


def feedback_buttons(topic: str) -> list[dict[str, str]]:
    """👍 / 👎, their payloads naming the topic answered (console/feedback.py reads them)."""
    entity = f'{{"avis_sujet":"{topic}"}}'
    return [button("👍 Oui", f"/avis_utile{entity}"), button("👎 Non", f"/avis_inutile{entity}")]


def feedback_answer(useful: bool) -> Reply:
    if useful:
        return Reply(FEEDBACK_THANKS)
    return Reply(FEEDBACK_SORRY, [button("Parler à un conseiller", "/demander_humain")])
