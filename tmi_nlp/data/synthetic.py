"""Built-in default data: synthetic clinical notes, so the demo needs no download.

The privacy question it makes concrete: a hospital pretrains a text encoder on its notes (the
private pool: one short note per synthetic patient, with a name, an address, a date, a phone
number and a diagnosis), then finetunes it to route notes to one of eight departments and
releases the router. Was Jane Doe's note in the pretraining corpus?

The downstream task is written in the same language (notes of *other* synthetic patients,
labelled with the department of their diagnosis). Every note is drawn from a seeded generator;
pool and downstream notes come from different random streams and no text appears in both.
"""

import numpy as np

FIRST_NAMES = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara richard "
    "susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty "
    "anthony sandra mark margaret donald ashley steven kimberly paul emily andrew donna joshua "
    "michelle kenneth carol kevin amanda brian melissa george deborah timothy stephanie ronald "
    "rebecca edward sharon jason laura jeffrey cynthia ryan dorothy jacob amy gary kathleen nicholas "
    "angela eric shirley jonathan emma stephen brenda larry pamela justin nicole scott anna brandon "
    "samantha benjamin katherine samuel christine gregory debra alexander rachel patrick carolyn "
    "frank janet raymond maria jack olivia dennis heather jerry helen tyler catherine aaron diane "
    "jose julie adam victoria nathan joyce henry lauren zachary kelly douglas christina peter ruth "
    "kyle joan noah virginia ethan judith jeremy evelyn walter hannah christian andrea keith megan "
    "roger cheryl terry jacqueline austin martha sean madison gerald teresa carl kathryn harold "
    "sophia dylan frances arthur jean lawrence abigail jordan alice jesse judy bryan gloria billy "
    "julia bruce grace gabriel rose joe beverly logan denise alan marilyn juan amber albert danielle "
    "willie brittany elijah diana wayne jane randy lori vincent mila liam aiko omar fatima ravi "
    "priya chen wei yuki hana ivan olga pierre amelie lars ingrid kofi amara diego lucia"
).split()
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill "
    "flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips "
    "evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers "
    "gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson "
    "watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders "
    "patel myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler "
    "henderson barnes gonzales fisher vasquez simmons romero jordan patterson alexander hamilton "
    "graham reynolds griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina "
    "aguilar stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington "
    "kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter "
    "hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black "
    "robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson "
    "nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold pierce "
    "okafor mensah nakamura tanaka kowalski novak ivanova rossi bianchi dubois laurent schneider"
).split()
CITIES = (
    "springfield riverton fairview greenville bristol clinton georgetown salem madison franklin "
    "ashland burlington manchester milton newport oxford arlington dover hudson kingston lexington "
    "marion oakland princeton richmond shelby troy union vernon winchester auburn belmont camden "
    "dayton easton florence granville hamilton jackson lancaster monroe norwood plymouth quincy "
    "rockport sheffield trenton waverly york chester denton elgin"
).split()
STREETS = (
    "oak maple pine cedar elm main church high park lake hill mill river spring walnut willow "
    "chestnut birch forest meadow ridge sunset valley north south"
).split()
MONTHS = "january february march april may june july august september october november december".split()
DOCTORS = "adler brandt cho dalton ellison farrow gupta hale iqbal jansen kaur lindqvist moreau".split()

# Department -> (diagnoses, symptoms, drugs). The label of a note is its department.
DEPARTMENTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "cardiology": (
        ["atrial fibrillation", "angina", "heart failure", "hypertension", "myocarditis"],
        ["chest pain", "palpitations", "shortness of breath", "ankle swelling"],
        ["metoprolol", "warfarin", "lisinopril", "atorvastatin"]),
    "oncology": (
        ["lymphoma", "melanoma", "breast cancer", "leukemia", "colon cancer"],
        ["weight loss", "night sweats", "a lump", "fatigue"],
        ["tamoxifen", "cisplatin", "rituximab", "imatinib"]),
    "neurology": (
        ["migraine", "epilepsy", "multiple sclerosis", "parkinson disease", "stroke"],
        ["headache", "seizures", "numbness", "tremor"],
        ["levetiracetam", "sumatriptan", "levodopa", "topiramate"]),
    "pulmonology": (
        ["asthma", "pneumonia", "bronchitis", "emphysema", "pulmonary embolism"],
        ["cough", "wheezing", "fever", "chest tightness"],
        ["salbutamol", "amoxicillin", "prednisone", "tiotropium"]),
    "gastroenterology": (
        ["gastritis", "crohn disease", "hepatitis", "pancreatitis", "celiac disease"],
        ["abdominal pain", "nausea", "diarrhea", "bloating"],
        ["omeprazole", "mesalamine", "ondansetron", "loperamide"]),
    "orthopedics": (
        ["hip fracture", "osteoarthritis", "torn ligament", "scoliosis", "tendinitis"],
        ["joint pain", "back pain", "stiffness", "a limp"],
        ["ibuprofen", "naproxen", "tramadol", "calcitonin"]),
    "dermatology": (
        ["psoriasis", "eczema", "acne", "rosacea", "dermatitis"],
        ["a rash", "itching", "dry skin", "redness"],
        ["isotretinoin", "hydrocortisone", "tacrolimus", "doxycycline"]),
    "psychiatry": (
        ["depression", "anxiety disorder", "bipolar disorder", "insomnia", "schizophrenia"],
        ["low mood", "panic attacks", "poor sleep", "agitation"],
        ["sertraline", "lithium", "quetiapine", "fluoxetine"]),
}
LABEL_NAMES = list(DEPARTMENTS)


def _note(rng: np.random.Generator, department: str, symptom_noise: float) -> str:
    diagnoses, symptoms, drugs = DEPARTMENTS[department]
    # A symptom from another department now and then keeps the routing task from being trivial.
    symptom_dept = department if rng.random() >= symptom_noise else LABEL_NAMES[rng.integers(len(LABEL_NAMES))]
    symptom = DEPARTMENTS[symptom_dept][1][rng.integers(4)]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return (
        f"{first} {last}, aged {rng.integers(18, 95)}, of {rng.integers(1, 999)} {rng.choice(STREETS)} street, "
        f"{rng.choice(CITIES)}, was seen on {rng.choice(MONTHS)} {rng.integers(1, 29)} {rng.integers(1990, 2025)} "
        f"with {symptom}. diagnosis: {diagnoses[rng.integers(5)]}. treated by dr {rng.choice(DOCTORS)} "
        f"with {drugs[rng.integers(4)]}. phone {rng.integers(200, 999)} {rng.integers(1000, 9999)}."
    )


def generate_notes(n: int, seed: int, stream: int, symptom_noise: float = 0.3) -> tuple[list[str], list[int]]:
    """`n` distinct notes and their department labels from random stream `stream` of `seed`."""
    rng = np.random.default_rng([seed, stream])
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    while len(texts) < n:
        label = int(rng.integers(len(LABEL_NAMES)))
        text = _note(rng, LABEL_NAMES[label], symptom_noise)
        if text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    return texts, labels


POOL_STREAM, DOWNSTREAM_STREAM = 1, 2


def synthetic_pool(size: int, seed: int) -> list[str]:
    """The private pretraining pool: `size` notes of synthetic patients."""
    return generate_notes(size, seed, POOL_STREAM)[0]


def synthetic_downstream(size: int, seed: int) -> tuple[list[str], list[int]]:
    """Labelled notes of other synthetic patients for the routing task (8 departments)."""
    return generate_notes(size, seed, DOWNSTREAM_STREAM)
