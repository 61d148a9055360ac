//! The words of emails and pages, per language (English, German, French).

use crate::domain::approval::RejectionCode;
use crate::domain::tenant::Locale;
use crate::domain::values::Initiator;

pub struct Texts {
    pub lang: &'static str,
    pub subject_one: &'static str,
    pub subject_many: &'static str,
    pub subject_reminder: &'static str,
    pub greeting: &'static str,
    pub intro: &'static str,
    pub intro_many: &'static str,
    pub reminder: &'static str,
    pub tenant: &'static str,
    pub subject_id: &'static str,
    pub received: &'static str,
    pub due: &'static str,
    pub initiator: &'static str,
    pub reason: &'static str,
    pub no_reason: &'static str,
    pub review: &'static str,
    pub link_valid_until: &'static str,
    pub account_stays_active: &'static str,
    pub unexpected: &'static str,
    // Pages.
    pub page_title: &'static str,
    pub page_intro: &'static str,
    pub approve: &'static str,
    pub approve_all: &'static str,
    pub reject: &'static str,
    pub reject_heading: &'static str,
    pub reason_code: &'static str,
    pub choose: &'static str,
    pub explanation: &'static str,
    pub explanation_hint: &'static str,
    pub decide_each: &'static str,
    pub submit_decisions: &'static str,
    pub decision: &'static str,
    pub done_title: &'static str,
    pub done_approved: &'static str,
    pub done_rejected: &'static str,
    pub done_mixed: &'static str,
    pub link_unknown: &'static str,
    pub link_used: &'static str,
    pub link_expired: &'static str,
    pub link_voided: &'static str,
    pub nothing_awaiting: &'static str,
    pub fix_errors: &'static str,
    // Notices to the data subject.
    pub notice_received_subject: &'static str,
    pub notice_received: &'static str,
    pub notice_rejected_subject: &'static str,
    pub notice_rejected: &'static str,
    pub notice_erased_subject: &'static str,
    pub notice_erased: &'static str,
    pub request_id: &'static str,
    pub notice_extended_subject: &'static str,
    pub notice_extended: &'static str,
}

pub fn texts(locale: Locale) -> &'static Texts {
    match locale {
        Locale::En => &EN,
        Locale::De => &DE,
        Locale::Fr => &FR,
    }
}

pub fn initiator_label(locale: Locale, i: Initiator) -> &'static str {
    match (locale, i) {
        (Locale::En, Initiator::Subject) => "The data subject",
        (Locale::En, Initiator::Support) => "Platform support, on the subject's behalf",
        (Locale::En, Initiator::RetentionPolicy) => "A data-retention policy",
        (Locale::De, Initiator::Subject) => "Die betroffene Person",
        (Locale::De, Initiator::Support) => {
            "Der Plattform-Support im Auftrag der betroffenen Person"
        }
        (Locale::De, Initiator::RetentionPolicy) => "Eine Aufbewahrungsrichtlinie",
        (Locale::Fr, Initiator::Subject) => "La personne concernée",
        (Locale::Fr, Initiator::Support) => {
            "Le support de la plateforme, pour la personne concernée"
        }
        (Locale::Fr, Initiator::RetentionPolicy) => "Une politique de conservation des données",
    }
}

pub fn rejection_label(locale: Locale, c: RejectionCode) -> &'static str {
    use RejectionCode as R;
    match (locale, c) {
        (Locale::En, R::Art17_3A) => "Art. 17(3)(a) GDPR: freedom of expression and information",
        (Locale::En, R::Art17_3B) => "Art. 17(3)(b) GDPR: legal obligation or public-interest task",
        (Locale::En, R::Art17_3C) => "Art. 17(3)(c) GDPR: public health",
        (Locale::En, R::Art17_3D) => "Art. 17(3)(d) GDPR: archiving, research or statistics",
        (Locale::En, R::Art17_3E) => "Art. 17(3)(e) GDPR: legal claims",
        (Locale::En, R::NotASubjectOfTenant) => "The person is not a user of this organisation",
        (Locale::En, R::IdentityNotVerified) => "The requester's identity could not be verified",
        (Locale::En, R::Other) => "Other reason",
        (Locale::De, R::Art17_3A) => {
            "Art. 17 Abs. 3 lit. a DSGVO: Meinungs- und Informationsfreiheit"
        }
        (Locale::De, R::Art17_3B) => {
            "Art. 17 Abs. 3 lit. b DSGVO: rechtliche Verpflichtung oder öffentliches Interesse"
        }
        (Locale::De, R::Art17_3C) => "Art. 17 Abs. 3 lit. c DSGVO: öffentliche Gesundheit",
        (Locale::De, R::Art17_3D) => {
            "Art. 17 Abs. 3 lit. d DSGVO: Archiv-, Forschungs- oder Statistikzwecke"
        }
        (Locale::De, R::Art17_3E) => "Art. 17 Abs. 3 lit. e DSGVO: Rechtsansprüche",
        (Locale::De, R::NotASubjectOfTenant) => "Die Person ist keine Nutzerin dieser Organisation",
        (Locale::De, R::IdentityNotVerified) => {
            "Die Identität der anfragenden Person konnte nicht geprüft werden"
        }
        (Locale::De, R::Other) => "Anderer Grund",
        (Locale::Fr, R::Art17_3A) => "Art. 17(3)(a) RGPD : liberté d'expression et d'information",
        (Locale::Fr, R::Art17_3B) => {
            "Art. 17(3)(b) RGPD : obligation légale ou mission d'intérêt public"
        }
        (Locale::Fr, R::Art17_3C) => "Art. 17(3)(c) RGPD : santé publique",
        (Locale::Fr, R::Art17_3D) => "Art. 17(3)(d) RGPD : archives, recherche ou statistiques",
        (Locale::Fr, R::Art17_3E) => "Art. 17(3)(e) RGPD : droits en justice",
        (Locale::Fr, R::NotASubjectOfTenant) => {
            "La personne n'est pas utilisatrice de cette organisation"
        }
        (Locale::Fr, R::IdentityNotVerified) => "L'identité du demandeur n'a pas pu être vérifiée",
        (Locale::Fr, R::Other) => "Autre motif",
    }
}

static EN: Texts = Texts {
    lang: "en",
    subject_one: "an erasure request needs your approval",
    subject_many: "erasure requests need your approval",
    subject_reminder: "Reminder:",
    greeting: "Hello",
    intro: "A person has asked for their personal data to be erased. As the privacy contact of this organisation you decide whether the erasure goes ahead.",
    intro_many: "Several people have asked for their personal data to be erased. As the privacy contact of this organisation you decide whether each erasure goes ahead.",
    reminder: "This request is still waiting for your decision. Earlier links no longer work; please use the one below.",
    tenant: "Organisation",
    subject_id: "Account (subject id)",
    received: "Received",
    due: "Legal deadline",
    initiator: "Requested by",
    reason: "Reason given",
    no_reason: "none given",
    review: "Review and decide",
    link_valid_until: "The link works once and is valid until",
    account_stays_active: "Until you decide, the account stays active and nothing is erased.",
    unexpected: "If you did not expect this email, contact the platform that sent it.",
    page_title: "Erasure request: your decision",
    page_intro: "As the privacy contact you decide whether this personal data is erased. Nothing happens until you choose.",
    approve: "Approve erasure",
    approve_all: "Approve all",
    reject: "Reject erasure",
    reject_heading: "Or reject it, with the reason the person will be told",
    reason_code: "Reason",
    choose: "Choose a reason",
    explanation: "Explanation",
    explanation_hint: "The person will be told this (GDPR Art. 12(4)).",
    decide_each: "Or decide request by request",
    submit_decisions: "Submit these decisions",
    decision: "Decision",
    done_title: "Decision recorded",
    done_approved: "Erasure approved. The systems holding the data are now told to erase it.",
    done_rejected: "Erasure rejected. The reason is recorded and the person will be told.",
    done_mixed: "Your decisions are recorded.",
    link_unknown: "This link is not valid. Check that you copied all of it.",
    link_used: "A decision was already made with this link. Nothing was changed.",
    link_expired: "This link has expired. Ask the platform to send a new one.",
    link_voided: "A newer link was sent for this request; please use the most recent email.",
    nothing_awaiting: "Nothing here is waiting for a decision any more (it may have been withdrawn).",
    fix_errors: "Please correct the following and submit again:",
    notice_received_subject: "We received your erasure request",
    notice_received: "We received your request to erase your personal data. It is being reviewed and will be answered by the date below.",
    notice_rejected_subject: "Your erasure request was refused",
    notice_rejected: "Your request to erase your personal data was refused, for the following reason:",
    notice_erased_subject: "Your personal data has been erased",
    notice_erased: "Your request has been carried out: your personal data has been erased.",
    request_id: "Request reference",
    notice_extended_subject: "The deadline for your erasure request was extended",
    notice_extended: "Your request to erase your personal data needs more time than usual. As the law allows (GDPR Art. 12(3)), the deadline for our answer is extended to the date below, for the following reason:",
};

static DE: Texts = Texts {
    lang: "de",
    subject_one: "ein Löschantrag wartet auf Ihre Freigabe",
    subject_many: "Löschanträge warten auf Ihre Freigabe",
    subject_reminder: "Erinnerung:",
    greeting: "Guten Tag",
    intro: "Eine Person hat die Löschung ihrer personenbezogenen Daten beantragt. Als Datenschutz-Ansprechperson dieser Organisation entscheiden Sie, ob gelöscht wird.",
    intro_many: "Mehrere Personen haben die Löschung ihrer personenbezogenen Daten beantragt. Als Datenschutz-Ansprechperson dieser Organisation entscheiden Sie über jeden Antrag.",
    reminder: "Dieser Antrag wartet noch auf Ihre Entscheidung. Frühere Links funktionieren nicht mehr; bitte verwenden Sie den folgenden.",
    tenant: "Organisation",
    subject_id: "Konto (Kennung)",
    received: "Eingegangen",
    due: "Gesetzliche Frist",
    initiator: "Beantragt von",
    reason: "Angegebener Grund",
    no_reason: "keiner angegeben",
    review: "Prüfen und entscheiden",
    link_valid_until: "Der Link ist einmal verwendbar und gültig bis",
    account_stays_active: "Bis zu Ihrer Entscheidung bleibt das Konto aktiv und nichts wird gelöscht.",
    unexpected: "Falls Sie diese E-Mail nicht erwartet haben, wenden Sie sich an die Plattform, die sie gesendet hat.",
    page_title: "Löschantrag: Ihre Entscheidung",
    page_intro: "Als Datenschutz-Ansprechperson entscheiden Sie, ob diese personenbezogenen Daten gelöscht werden. Bis zu Ihrer Wahl geschieht nichts.",
    approve: "Löschung freigeben",
    approve_all: "Alle freigeben",
    reject: "Löschung ablehnen",
    reject_heading: "Oder lehnen Sie ab, mit dem Grund, der der Person mitgeteilt wird",
    reason_code: "Grund",
    choose: "Grund auswählen",
    explanation: "Erläuterung",
    explanation_hint: "Dies wird der Person mitgeteilt (Art. 12 Abs. 4 DSGVO).",
    decide_each: "Oder entscheiden Sie Antrag für Antrag",
    submit_decisions: "Entscheidungen absenden",
    decision: "Entscheidung",
    done_title: "Entscheidung gespeichert",
    done_approved: "Löschung freigegeben. Die Systeme, die die Daten halten, werden jetzt zur Löschung aufgefordert.",
    done_rejected: "Löschung abgelehnt. Der Grund ist gespeichert und wird der Person mitgeteilt.",
    done_mixed: "Ihre Entscheidungen sind gespeichert.",
    link_unknown: "Dieser Link ist ungültig. Bitte prüfen Sie, ob Sie ihn vollständig kopiert haben.",
    link_used: "Mit diesem Link wurde bereits entschieden. Es wurde nichts geändert.",
    link_expired: "Dieser Link ist abgelaufen. Bitten Sie die Plattform um einen neuen.",
    link_voided: "Für diesen Antrag wurde ein neuerer Link gesendet; bitte verwenden Sie die neueste E-Mail.",
    nothing_awaiting: "Hier wartet nichts mehr auf eine Entscheidung (der Antrag wurde möglicherweise zurückgezogen).",
    fix_errors: "Bitte korrigieren Sie Folgendes und senden Sie erneut:",
    notice_received_subject: "Wir haben Ihren Löschantrag erhalten",
    notice_received: "Wir haben Ihren Antrag auf Löschung Ihrer personenbezogenen Daten erhalten. Er wird geprüft und bis zum unten genannten Datum beantwortet.",
    notice_rejected_subject: "Ihr Löschantrag wurde abgelehnt",
    notice_rejected: "Ihr Antrag auf Löschung Ihrer personenbezogenen Daten wurde aus folgendem Grund abgelehnt:",
    notice_erased_subject: "Ihre personenbezogenen Daten wurden gelöscht",
    notice_erased: "Ihr Antrag wurde ausgeführt: Ihre personenbezogenen Daten wurden gelöscht.",
    request_id: "Vorgangsnummer",
    notice_extended_subject: "Die Frist für Ihren Löschantrag wurde verlängert",
    notice_extended: "Die Bearbeitung Ihres Antrags auf Löschung Ihrer personenbezogenen Daten braucht mehr Zeit als üblich. Wie gesetzlich vorgesehen (Art. 12 Abs. 3 DSGVO) wird die Frist für unsere Antwort bis zum unten genannten Datum verlängert, aus folgendem Grund:",
};

static FR: Texts = Texts {
    lang: "fr",
    subject_one: "une demande d'effacement attend votre approbation",
    subject_many: "des demandes d'effacement attendent votre approbation",
    subject_reminder: "Rappel :",
    greeting: "Bonjour",
    intro: "Une personne a demandé l'effacement de ses données personnelles. En tant que contact vie privée de cette organisation, vous décidez si l'effacement a lieu.",
    intro_many: "Plusieurs personnes ont demandé l'effacement de leurs données personnelles. En tant que contact vie privée de cette organisation, vous décidez pour chaque demande.",
    reminder: "Cette demande attend toujours votre décision. Les liens précédents ne fonctionnent plus ; utilisez celui ci-dessous.",
    tenant: "Organisation",
    subject_id: "Compte (identifiant)",
    received: "Reçue le",
    due: "Échéance légale",
    initiator: "Demandée par",
    reason: "Motif indiqué",
    no_reason: "aucun",
    review: "Examiner et décider",
    link_valid_until: "Le lien ne sert qu'une fois et reste valable jusqu'au",
    account_stays_active: "Tant que vous n'avez pas décidé, le compte reste actif et rien n'est effacé.",
    unexpected: "Si vous n'attendiez pas ce message, contactez la plateforme qui l'a envoyé.",
    page_title: "Demande d'effacement : votre décision",
    page_intro: "En tant que contact vie privée, vous décidez si ces données personnelles sont effacées. Rien ne se passe avant votre choix.",
    approve: "Approuver l'effacement",
    approve_all: "Tout approuver",
    reject: "Refuser l'effacement",
    reject_heading: "Ou refusez-le, avec le motif qui sera communiqué à la personne",
    reason_code: "Motif",
    choose: "Choisissez un motif",
    explanation: "Explication",
    explanation_hint: "Elle sera communiquée à la personne (art. 12(4) RGPD).",
    decide_each: "Ou décidez demande par demande",
    submit_decisions: "Envoyer ces décisions",
    decision: "Décision",
    done_title: "Décision enregistrée",
    done_approved: "Effacement approuvé. Les systèmes qui détiennent les données sont maintenant invités à les effacer.",
    done_rejected: "Effacement refusé. Le motif est enregistré et sera communiqué à la personne.",
    done_mixed: "Vos décisions sont enregistrées.",
    link_unknown: "Ce lien n'est pas valide. Vérifiez que vous l'avez copié en entier.",
    link_used: "Une décision a déjà été prise avec ce lien. Rien n'a été modifié.",
    link_expired: "Ce lien a expiré. Demandez-en un nouveau à la plateforme.",
    link_voided: "Un lien plus récent a été envoyé pour cette demande ; utilisez le dernier message.",
    nothing_awaiting: "Plus rien n'attend de décision ici (la demande a peut-être été retirée).",
    fix_errors: "Veuillez corriger ce qui suit et renvoyer :",
    notice_received_subject: "Nous avons reçu votre demande d'effacement",
    notice_received: "Nous avons reçu votre demande d'effacement de vos données personnelles. Elle est en cours d'examen et recevra une réponse avant la date ci-dessous.",
    notice_rejected_subject: "Votre demande d'effacement a été refusée",
    notice_rejected: "Votre demande d'effacement de vos données personnelles a été refusée pour le motif suivant :",
    notice_erased_subject: "Vos données personnelles ont été effacées",
    notice_erased: "Votre demande a été exécutée : vos données personnelles ont été effacées.",
    request_id: "Référence de la demande",
    notice_extended_subject: "Le délai de votre demande d'effacement a été prolongé",
    notice_extended: "Le traitement de votre demande d'effacement de vos données personnelles demande plus de temps que d'habitude. Comme la loi le permet (art. 12(3) RGPD), le délai de notre réponse est prolongé jusqu'à la date ci-dessous, pour le motif suivant :",
};
