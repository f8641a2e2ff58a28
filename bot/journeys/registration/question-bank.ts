/**
 * The bank of security questions people choose from when they register.
 *
 * Written for this service: each asks for something a person remembers and that
 * is hard to look up on social media or in a staff directory. Ids are stable:
 * stored answer hashes refer to them, so a question's text may be reworded but
 * its id never reused for a different question.
 */
export const QUESTION_BANK = [
  { id: 'q01', text: 'What was the name of the street you lived on when you were eight?' },
  { id: 'q02', text: 'What was the first thing you bought with your own wages?' },
  { id: 'q03', text: 'What was the surname of your favourite teacher at primary school?' },
  { id: 'q04', text: 'What was the name of the first pet you looked after?' },
  { id: 'q05', text: 'Which town did you go to on your first holiday without your family?' },
  { id: 'q06', text: 'What was the make of the first car you drove?' },
  { id: 'q07', text: 'What was the name of the first ward, office or shop you worked in?' },
  { id: 'q08', text: 'What was the first concert or show you saw live?' },
  { id: 'q09', text: 'What was the nickname your grandparents used for you?' },
  { id: 'q10', text: 'What was the name of your best friend at age ten?' },
  { id: 'q11', text: 'What dish did you first learn to cook by yourself?' },
  { id: 'q12', text: 'What was the first film you saw at a cinema without an adult?' },
  { id: 'q13', text: 'What was the name of the sports team you played for as a child?' },
  { id: 'q14', text: 'What was the title of the first book you remember reading on your own?' },
  { id: 'q15', text: 'In which town was your first job interview?' },
  { id: 'q16', text: 'What was the name of the toy you would not part with as a child?' },
  { id: 'q17', text: 'What was the house number of your first flat or shared house?' },
  { id: 'q18', text: 'What was the first musical instrument you tried to learn?' },
  { id: 'q19', text: 'What was the name of the cafe or pub you went to most as a student?' },
  { id: 'q20', text: 'What was the first foreign word you learned?' },
] as const;

export type QuestionId = (typeof QUESTION_BANK)[number]['id'];

const BY_ID: ReadonlyMap<string, string> = new Map(QUESTION_BANK.map((q) => [q.id, q.text]));

/** Text of a question by id, or undefined for an unknown id. */
export function questionText(id: string): string | undefined {
  return BY_ID.get(id);
}

/** True when `id` names a question in the bank. */
export function isQuestionId(id: string): id is QuestionId {
  return BY_ID.has(id);
}
