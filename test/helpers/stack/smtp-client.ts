// Sends one raw message over SMTP with nodemailer (no pooling, no TLS) to 127.0.0.1:port.
// Resolves with the server's final reply text; rejects with the nodemailer error, whose
// responseCode (e.g. 550) and response say what the server answered.
import nodemailer from 'nodemailer';

export interface SendSmtpMessage {
  from: string;
  to: string[];
  raw: Buffer | string;
}

export interface SmtpError extends Error {
  responseCode?: number;
  response?: string;
  code?: string;
}

export async function sendSmtp(port: number, msg: SendSmtpMessage, host = '127.0.0.1'): Promise<string> {
  const transport = nodemailer.createTransport({
    host,
    port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
    connectionTimeout: 10_000,
    socketTimeout: 30_000,
  });
  try {
    const info = await transport.sendMail({ envelope: { from: msg.from, to: msg.to }, raw: msg.raw });
    return String(info.response);
  } finally {
    transport.close();
  }
}
