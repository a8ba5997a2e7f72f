"""The assistant's French answers, composed from the fiche.

Pure functions (fiche, question, instant) -> Reply, so that every answer can be tested
without Rasa. No fact is written here: numbers, emails, hours, addresses and links all come
from the Fiche object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Optional, Sequence

from actions.fiche import CHANNELS, DAY_NAMES, PROCEDURES, Fiche, PhoneService, hour_text
from actions.hours import holiday_name, is_open, next_opening, to_noumea, when_text

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
}


@dataclass
class Reply:
    text: str
    buttons: List[Dict[str, str]] = field(default_factory=list)


def button(title: str, payload: str) -> Dict[str, str]:
    return {"title": title, "payload": payload}


def channel_button(channel: str) -> Dict[str, str]:
    return button(CHANNEL_BUTTONS[channel], f'/preciser_canal{{"canal":"{channel}"}}')


def _with_source(fiche: Fiche, *lines: str) -> str:
    return "\n".join([*lines, fiche.source_text])


# How each status reads before the cell's answer.
STATUS_PREFIX = {"available": "oui — ", "restricted": "", "unavailable": "NON — "}


def _cell_line(fiche: Fiche, channel: str, cell) -> str:
    return f"• {fiche.channels[channel]} : {STATUS_PREFIX[cell.status]}{cell.answer}"


# --- procedures -------------------------------------------------------------------------


def procedure_answer(fiche: Fiche, procedure: str, channel: Optional[str] = None) -> Reply:
    """A procedure, for one channel or (channel None) for all of them."""
    proc = fiche.procedures[procedure]
    working = [c for c in CHANNELS if proc.cells[c].status != "unavailable"]
    if channel not in CHANNELS:
        # Channels that work first, then what does not.
        order = working + [c for c in CHANNELS if c not in working]
        lines = [f"{proc.label} :"] + [_cell_line(fiche, c, proc.cells[c]) for c in order]
        if len(working) > 1:
            lines.append("Je peux détailler un canal :")
        return Reply(_with_source(fiche, *lines), [channel_button(c) for c in working] if len(working) > 1 else [])

    cell = proc.cells[channel]
    others = [c for c in working if c != channel]
    head = f"{proc.label} — {fiche.channels[channel]} : "
    if cell.status == "available":
        return Reply(_with_source(fiche, head + STATUS_PREFIX["available"] + cell.answer))
    if cell.status == "restricted":
        lines = [head + cell.answer]
        if others:
            lines.append("Autres canaux, aux mêmes conditions :" if all(
                proc.cells[c].status == "restricted" for c in others) else "Autres canaux :")
            lines += [_cell_line(fiche, c, proc.cells[c]) for c in others]
        return Reply(_with_source(fiche, *lines))
    lines = [head + "NON, pas par ce canal : " + cell.answer, "Voici ce qui fonctionne :"]
    lines += [_cell_line(fiche, c, proc.cells[c]) for c in others]
    return Reply(_with_source(fiche, *lines), [channel_button(c) for c in others] if len(others) > 1 else [])


def which_procedure() -> Reply:
    """A channel was named with no procedure in the conversation: ask which one."""
    return Reply(
        "Pour quelle démarche ? Choisissez-la ou décrivez-la en quelques mots.",
        [button(TOPIC_TITLES[p], f"/{p}") for p in PROCEDURES],
    )


# --- opening hours ----------------------------------------------------------------------


def _now_text(instant: datetime) -> str:
    local = to_noumea(instant)
    return f"Il est {hour_text(local.time())} à Nouméa ({DAY_NAMES[local.isoweekday() - 1]} {local.strftime('%d/%m')})."


def service_state(service: PhoneService, instant: datetime) -> str:
    """'ouvert en ce moment' or 'fermé en ce moment (jour férié : ...) ; réouverture demain à 7h30'."""
    if is_open(service, instant):
        return "ouvert en ce moment"
    holiday = holiday_name(to_noumea(instant).date())
    reason = f" (jour férié : {holiday})" if holiday else ""
    return f"fermé en ce moment{reason} ; réouverture {when_text(next_opening(service, instant), instant)}"


def _service_line(service: PhoneService, instant: datetime) -> str:
    if service.always_open:
        return f"• {service.name}, au {service.number} : {service.hours_text}."
    return f"• {service.name}, au {service.number} : {service.hours_text} — {service_state(service, instant)}."


def hours_answer(fiche: Fiche, instant: datetime, services: Sequence[str] = ()) -> Reply:
    keys = [s for s in services if s in fiche.phones] or list(MAIN_SERVICES)
    lines = [_now_text(instant)] + [_service_line(fiche.phones[k], instant) for k in keys]
    if any(not is_open(fiche.phones[k], instant) for k in keys) and ALWAYS_OPEN_SERVICE not in keys:
        info = fiche.phones[ALWAYS_OPEN_SERVICE]
        lines.append(f"En dehors des horaires, le {info.number} ({info.name}) répond {info.hours_text}.")
    return Reply(_with_source(fiche, *lines))


# --- contacts and information -----------------------------------------------------------


def contact_telephone(fiche: Fiche, instant: datetime, services: Sequence[str] = ()) -> Reply:
    keys = [s for s in services if s in fiche.phones] or list(fiche.phones)
    lines = ["Nos numéros :"] + [_service_line(fiche.phones[k], instant) for k in keys]
    if not services:
        lines.append(f"• Depuis l'extérieur de la Nouvelle-Calédonie : {fiche.abroad_number}.")
    return Reply(_with_source(fiche, *lines))


def contact_email(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(
        fiche,
        "Nos adresses email :",
        f"• Service Clientèle : {fiche.email_service_clientele}",
        f"• Agence Entreprise : {fiche.email_agence}",
    ))


def contact_adresse(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(
        fiche,
        f"• Sur place : {fiche.agency_name}, {fiche.agency_address}.",
        f"• Par courrier : {fiche.postal_name}, {fiche.postal_address}.",
    ))


def contact_etranger(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(
        fiche,
        f"Depuis l'extérieur de la Nouvelle-Calédonie, appelez le {fiche.abroad_number} : {fiche.abroad_price}.",
        f"Guide tarifaire : {fiche.tariff_guide}",
    ))


def contact_forum(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(fiche, f"Le forum participatif de l'OPT : {fiche.forum}"))


def contact_chat(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(
        fiche, f"Chat Cagou vous répond sur le site {fiche.chat_site} et sur {fiche.chat_messenger}."
    ))


def contact_general(fiche: Fiche, instant: datetime) -> Reply:
    phones = [_service_line(fiche.phones[k], instant) for k in fiche.phones]
    return Reply(_with_source(
        fiche,
        "Pour nous joindre :",
        *phones,
        f"• Depuis l'étranger : {fiche.abroad_number}",
        f"• Par email : {fiche.email_service_clientele} ou {fiche.email_agence}",
        f"• Sur place : {fiche.agency_name}, {fiche.agency_address}",
        f"• Par courrier : {fiche.postal_name}, {fiche.postal_address}",
        f"• Forum : {fiche.forum} ; chat : {fiche.chat_site} et {fiche.chat_messenger}",
    ))


def suivi_conso(fiche: Fiche, instant: datetime) -> Reply:
    lines = ["Consommation du mois en cours :"]
    for item in fiche.consumption:
        if item.current_month:
            lines.append(f"• {item.channel} : oui.")
        else:
            note = f" ({item.note})" if item.note else ""
            lines.append(f"• {item.channel} : non{note}.")
    return Reply(_with_source(fiche, *lines))


def delai_retablissement(fiche: Fiche, instant: datetime) -> Reply:
    support = fiche.procedures["support_technique"].cells["telephone"].answer
    claim = fiche.procedures["reclamation"].cells["courrier"].answer
    return Reply(_with_source(
        fiche,
        fiche.restoration_text,
        "C'est le délai de rétablissement du service avant compensation.",
        f"• Signaler une panne (SAV) par téléphone : {support}",
        f"• Faire une réclamation par mail ou internet : {claim}",
    ))


def cout_appel_service_client(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(_with_source(
        fiche,
        f"Les appels au service clientèle sont pris en charge : {fiche.customer_service_calls}.",
        f"Depuis l'étranger, le {fiche.abroad_number} coûte le {fiche.abroad_price}.",
    ))


def guide_tarifaire(fiche: Fiche, instant: datetime) -> Reply:
    return Reply(
        "Les tarifs en vigueur, la description des offres et les conseils sont dans le guide tarifaire : "
        f"{fiche.tariff_guide}\nSource : guide tarifaire Mobilis, {fiche.tariff_guide}"
    )


INFO_ANSWERS = {
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
}


# --- human handoff and clarification ----------------------------------------------------


def handoff_answer(fiche: Fiche, instant: datetime, after_failure: bool = False) -> Reply:
    service = fiche.phones["1000"]
    info = fiche.phones[ALWAYS_OPEN_SERVICE]
    intro = (
        "Je n'arrive pas à comprendre votre demande : un conseiller pourra vous aider."
        if after_failure else "Pour parler à un conseiller :"
    )
    return Reply(_with_source(
        fiche,
        intro,
        f"• {service.name} au {service.number}, {service.hours_text} — {service_state(service, instant)}.",
        f"• Par email : {fiche.email_service_clientele}",
        f"• Sur place : {fiche.agency_name}, {fiche.agency_address}",
        f"En dehors des horaires, le {info.number} répond {info.hours_text}.",
    ))


def clarify_answer(candidates: Sequence[str]) -> Reply:
    titles = [c for c in candidates if c in TOPIC_TITLES][:2]
    text = "Je ne suis pas sûr d'avoir compris. "
    text += "Vouliez-vous parler de l'un de ces sujets ?" if titles else "Pouvez-vous reformuler ?"
    buttons = [button(TOPIC_TITLES[t], f"/{t}") for t in titles]
    buttons.append(button(TOPIC_TITLES["demander_humain"], "/demander_humain"))
    return Reply(text + " Vous pouvez aussi reformuler votre question.", buttons)
